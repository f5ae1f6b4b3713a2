"""A new modality in one model and one task: an EBT that learns y = sin(3x) from noisy samples, trained by the same
trainer (base_model_trainer.ModelTrainer) as every other model.

    python example_code/toy_regression_ebt.py [--steps 300]

The model is an energy E(x, y) (a small MLP) that thinks: y starts as N(0, 1) noise and takes --mcmc_num_steps
gradient steps down the energy, and training backpropagates through them (model/thinking.py does the thinking;
EnergyMinimizer's thinking_report the loss and logs). The task supplies the data. Registering both is all the
trainer needs; every other option keeps its command-line default.
"""
import argparse
import math
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils.data import StackDataset, TensorDataset, default_collate  # noqa: E402

from base_model_trainer import ModelTrainer  # noqa: E402
from model.config import ThinkingConfig  # noqa: E402
from model.registry import register_model  # noqa: E402
from model.thinking import EnergyMinimizer  # noqa: E402
from tasks import Task, register_task  # noqa: E402
from utils.cli import flag_defaults  # noqa: E402


@dataclass
class ToyConfig(ThinkingConfig):
    hidden: int = 64


class ToyRegressionEBT(EnergyMinimizer):
    """E(x, y) = MLP([x, y]); the prediction is y after thinking from a random guess."""

    def __init__(self, hparams):
        super().__init__(ToyConfig.from_hparams(hparams))
        h = self.cfg.hidden
        self.energy = nn.Sequential(nn.Linear(2, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1))

    tokens_per_sample = 1  # one prediction per sample

    def estimate_flops(self):
        weights = sum(p.numel() for p in self.energy.parameters())
        return 6 * weights * (1 + 2 * self.num_evaluation_steps())  # forward, input gradient, second order

    def forward(self, x, learning=False, final_energy=False):
        energy_fn = lambda y, landscape: self.energy(torch.cat([x, y], dim=-1)).squeeze(-1)  # (B,)
        return self.minimize(energy_fn, torch.randn_like(x), (x.shape[0], 1), learning, final_energy)

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        result, final_energy = self.think_for_loss(batch["x"], phase == "train", final_energy, inference)
        step_losses = torch.stack([nn.functional.mse_loss(y, batch["y"]) for y in result.states])
        return {**self.thinking_report(result, step_losses, final_energy),
                "count": torch.tensor(batch["x"].shape[0], device=batch["x"].device)}


class ToyRegressionTask(Task):
    """Samples x ~ U[-1, 1], y = sin(3x) + N(0, 0.05^2): 4096 for training, 512 each to validate and test."""

    def splits(self, model, stage):
        generator = torch.Generator().manual_seed(self.hp.seed)
        x = torch.rand(5120, 1, generator=generator) * 2 - 1
        y = torch.sin(3 * x) + 0.05 * torch.randn(x.shape, generator=generator)
        parts = [StackDataset(x=TensorDataset(x[a:b]), y=TensorDataset(y[a:b]))
                 for a, b in ((0, 4096), (4096, 4608), (4608, 5120))]
        return tuple(parts)

    def collate(self):
        return lambda rows: {k: v[0] for k, v in default_collate(rows).items()}  # TensorDataset rows are 1-tuples

    def describe_inputs(self, model):
        return "x in [-1, 1] -> y = sin(3x)"


register_model("TOY", "ebt", ToyRegressionEBT, ToyConfig)
register_task("TOY", ToyRegressionTask)


def main(argv=None):
    """Train; returns the validation MSE after thinking (predicting 0 scores E[sin^2(3x)] = 1/2 - sin(6)/12 = 0.52)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    hp = dict(flag_defaults(), modality="TOY", model_name="ebt", batch_size_per_device=64, num_workers=0,
              max_steps=args.steps, warm_up_steps=max(1, args.steps // 10), max_scheduling_steps=args.steps,
              peak_learning_rate=3e-3, mcmc_step_size=0.5, mcmc_step_size_learnable=True,
              mcmc_step_size_lr_multiplier=10.0)
    module = ModelTrainer(hp)
    trainer = L.Trainer(max_steps=args.steps, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                        check_val_every_n_epoch=None, val_check_interval=args.steps, gradient_clip_val=1.0,
                        use_distributed_sampler=False, accelerator="cpu", devices=1)
    trainer.fit(module)
    mse = float(trainer.callback_metrics["valid_final_step_loss"])
    print(f"{module.task.describe_inputs(module.model)}: validation MSE after thinking {mse:.4f} (predicting 0: "
          f"{0.5 - math.sin(6) / 12:.3f}), learned step size {float(module.model.alpha.detach()):.3f}")
    return mse


if __name__ == "__main__":
    main()
