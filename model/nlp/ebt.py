"""Autoregressive Energy-Based Transformer for language (spec 2.1-2.7).

For every position i the model learns an energy E_i(x_<=i, p_i) of a candidate next-token
distribution p_i, and predicts by thinking: start from random logits, then repeatedly
`logits <- softmax(logits) - alpha * dE/dsoftmax(logits)` (the published update rule, model/thinking.py).
The loss is the next-token cross-entropy of the logits after every step, averaged over steps.
"""
import torch
import torch.nn as nn

from model.ar_ebt import AutoregressiveEBT
from model.blocks import init_linear
from model.config import EBTConfig
from model.nlp.common import count_target_tokens, inputs_and_targets, next_token_loss
from model.thinking import landscape_schedule, think

MIN_STEP_SIZE = 1e-4  # alpha is clamped here so a learnable step size cannot go negative


class EBT_NLP(nn.Module):
    """Embeddings for observed tokens and predicted distributions + the AR EBT trunk + alpha."""

    def __init__(self, hparams):
        super().__init__()
        cfg = hparams if isinstance(hparams, EBTConfig) else EBTConfig.from_hparams(hparams)
        self.cfg = cfg
        V, D = cfg.vocab_size, cfg.embedding_dim
        self.embeddings = nn.Embedding(V, D)  # N(0, 1), as published
        if not cfg.vocab_to_embed_uses_prob_dist:  # else predictions are embedded as p @ embeddings
            self.vocab_to_embed = nn.Linear(V, D, bias=False)
            init_linear(self.vocab_to_embed, cfg.weight_initialization_method, cfg.weight_initialization_gain)
        self.transformer = AutoregressiveEBT(cfg)
        self.alpha = nn.Parameter(torch.tensor(float(cfg.mcmc_step_size)),
                                  requires_grad=cfg.mcmc_step_size_learnable)

    def embed_prediction(self, prediction):
        """Predicted distributions (or raw logits without normalisation) (B, n, V) -> (B, n, D)."""
        if self.cfg.vocab_to_embed_uses_prob_dist:
            return prediction @ self.embeddings.weight
        return self.vocab_to_embed(prediction)

    def initial_logits(self, batch_size, n, device):
        """The random initial guess z_0 (spec 2.6 step 4)."""
        shape, dtype = (batch_size, n, self.cfg.vocab_size), self.embeddings.weight.dtype
        if self.cfg.denoising_initial_condition == "zeros":
            return torch.zeros(shape, device=device, dtype=dtype)
        return torch.randn(shape, device=device, dtype=dtype) * self.cfg.gaussian_random_noise_scaling

    def energy_function(self, input_ids, learning):
        """E(prediction, landscape) -> (B, n) for a batch of observed tokens (B, n)."""
        observed = self.embeddings(input_ids)  # (B, n, D)
        trunk = self.transformer
        if self.cfg.ebt_attention == "reference":
            return lambda p, landscape: trunk.reference_energies(observed, self.embed_prediction(p), landscape)

        caches = {}  # observed keys/values, per landscape where the landscape conditions them

        def energy(p, landscape):
            key = landscape if trunk.observed_depends_on_landscape else None
            if key not in caches:
                with torch.set_grad_enabled(learning):  # evaluation needs no graph through the cache
                    caches[key] = trunk.observe(observed, landscape)
            return trunk.energies(caches[key], self.embed_prediction(p), landscape)

        return energy

    def forward(self, input_ids, learning=False, final_energy=False):
        """Think about the next token at every position. input_ids (B, n) -> ThinkingResult.

        `states[i]` are the logits (B, n, V) after step i; `energies[i]` (B, n) the energy of the
        prediction that step started from; with final_energy, `final_energy` that of the last prediction.
        learning=True builds the second-order graph for training.
        """
        B, n = input_ids.shape
        return think(
            self.energy_function(input_ids, learning),
            self.initial_logits(B, n, input_ids.device),
            step_size=self.alpha.clamp(min=MIN_STEP_SIZE),
            landscapes=landscape_schedule(self.cfg.mcmc_num_steps),
            create_graph=learning,
            normalize=(lambda z: torch.softmax(z, dim=-1)) if self.cfg.normalize_initial_condition else None,
            evaluate_final_energy=final_energy,
        )

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None):
        """Loss and logs for a batch of token rows (B, C+1) (spec 2.7).

        final_energy (default: outside training) adds `final_energy`, the energy after thinking.
        """
        inputs, targets = inputs_and_targets(batch)
        final_energy = phase != "train" if final_energy is None else final_energy
        # no second-order graph outside training
        result = self(inputs, learning=phase == "train", final_energy=final_energy)
        pad = self.cfg.pad_token_id
        step_losses = torch.stack([next_token_loss(logits, targets, pad) for logits in result.states])
        not_pad = (targets != pad).float()
        token_mean = lambda e: (e.detach() * not_pad).sum() / not_pad.sum().clamp(min=1)
        step_energies = torch.stack([token_mean(e) for e in result.energies])
        final = step_losses[-1].detach()
        extra = {"final_energy": token_mean(result.final_energy)} if final_energy else {}
        return {
            **extra,
            "loss": step_losses.mean(),
            "initial_loss": step_losses[0].detach(),
            "final_step_loss": final,
            "perplexity": final.exp(),
            "initial_final_pred_energies_gap": step_energies[0] - step_energies[-1],
            "step_losses": step_losses.detach(),  # (T,) loss after each thinking step
            "step_energies": step_energies,  # (T,) mean energy each step started from
            "num_tokens": count_target_tokens(targets, pad),
        }
