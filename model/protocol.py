"""The interface every model of model.registry implements: what the trainer, the evaluation and the decoders ask.

Models derive from `Model` (the EBTs through `model.thinking.EnergyMinimizer`), so a new model shows in one place
what it must provide, and callers ask the model instead of probing it with hasattr.
"""
import torch.nn as nn


class Model(nn.Module):
    is_ebt = False  # thinks: an EnergyMinimizer with a step size, thinking steps and System 2 inference

    def forward_loss_wrapper(self, batch, phase="train", **options):
        """{"loss", "step_losses", "count", ...logs} for one batch of the model's task in a phase (train, valid,
        test)."""
        raise NotImplementedError

    @property
    def tokens_per_sample(self):
        """Positions the transformer predicts per training sample: text tokens and video frames (the context
        length); image models override it with their patches."""
        return self.cfg.context_length

    def estimate_flops(self):
        """Training FLOPs per token (model/flops.py): curves against compute, not only steps."""
        raise NotImplementedError

    def warm_up_finished(self):
        """Called once when the learning-rate warm-up ends; most models have nothing to switch."""
