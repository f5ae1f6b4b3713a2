"""Autoregressive Energy-Based Transformer for language (docs/method.md §2, §3.5, §4).

For every position i the model learns an energy E_i(x_<=i, p_i) of a candidate next-token
distribution p_i, and predicts by thinking: start from random logits, then repeatedly
`logits <- softmax(logits) - alpha * dE/dsoftmax(logits)` (the published update rule, model/thinking.py).
The loss is the next-token cross-entropy of the logits after every step, averaged over steps.
System 2 training adds random step sizes and step counts, Langevin noise, no-detach + truncation, a
replay buffer and a contrastive term, each behind its published flag (config.EBTConfig).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.ar_ebt import AutoregressiveEBT, energy_of_embedded
from model.blocks import init_linear
from model.config import EBTConfig
from model.flops import autoregressive_ebt_flops
from model.nlp.common import count_target_tokens, inputs_and_targets, next_token_loss
from model.nlp.vocab_step import chunk_rows, think_over_vocabulary
from model.replay_buffer import CausalReplayBuffer
from model.thinking import EnergyMinimizer, ThinkingProblem, standard_normal


class EBT_NLP(EnergyMinimizer):
    """Embeddings for observed tokens and predicted distributions + the AR EBT trunk + alpha."""

    def __init__(self, hparams):
        cfg = hparams if isinstance(hparams, EBTConfig) else EBTConfig.from_hparams(hparams)
        super().__init__(cfg)
        self.landscape_conditioned = cfg.ebt_type != "default"
        V, D = cfg.vocab_size, cfg.embedding_dim
        self.embeddings = nn.Embedding(V, D)  # N(0, 1), as published
        if not cfg.vocab_to_embed_uses_prob_dist:  # else predictions are embedded as p @ embeddings
            self.vocab_to_embed = nn.Linear(V, D, bias=False)
            init_linear(self.vocab_to_embed, cfg.weight_initialization_method, cfg.weight_initialization_gain)
        self.transformer = AutoregressiveEBT(cfg)
        if cfg.mcmc_replay_buffer:
            self.replay_buffer = CausalReplayBuffer(
                cfg.mcmc_replay_buffer_size, cfg.context_length + 1, V,
                int(cfg.batch_size_per_device * cfg.mcmc_replay_buffer_sample_bs_percent))

    @staticmethod
    def normalize(logits):
        """With normalize_initial_condition the energy sees probabilities (and dE/dp is taken, docs/method.md §2.3)."""
        return torch.softmax(logits, dim=-1)

    def embed_observed(self, input_ids):
        """Observed tokens (B, n) -> (B, n, D)."""
        return self.embeddings(input_ids)

    def embed_prediction(self, prediction):
        """Predicted distributions (or raw logits without normalisation) (B, n, V) -> (B, n, D)."""
        if self.cfg.vocab_to_embed_uses_prob_dist:
            return prediction @ self.embeddings.weight
        return self.vocab_to_embed(prediction)

    def initial_logits(self, batch_size, n, device):
        """The random initial guess z_0 (docs/method.md §2.2)."""
        shape, dtype = (batch_size, n, self.cfg.vocab_size), self.embeddings.weight.dtype
        if self.cfg.denoising_initial_condition == "zeros":
            return torch.zeros(shape, device=device, dtype=dtype)
        z0 = standard_normal(shape, device, dtype)
        scale = self.cfg.gaussian_random_noise_scaling
        return z0 if scale == 1 else z0.mul_(scale)  # a (B, n, V) pass saved at the default scale

    def embedded_energy_function(self, input_ids, learning):
        """E(embedded prediction (B, n, D), landscape) -> (B, n) for a batch of observed tokens (B, n)."""
        return self.transformer.energy_function(self.embeddings(input_ids), learning,
                                                reference=self.cfg.ebt_attention == "reference")

    def energy_function(self, input_ids, learning):
        """E(prediction (B, n, V), landscape) -> (B, n) for a batch of observed tokens (B, n)."""
        energy = self.embedded_energy_function(input_ids, learning)
        return energy_of_embedded(energy, self.embed_prediction)

    def forward(self, input_ids, learning=False, final_energy=False, initial_logits=None):
        """Think about the next token at every position. input_ids (B, n) -> ThinkingResult.

        `states[i]` are the logits (B, n, V) after step i; `energies[i]` (B, n) the energy of the
        prediction that step started from; with final_energy, `final_energy` that of the last prediction.
        learning=True means training: the second-order graph and the System 2 randomness.
        initial_logits (R, n, V) replace the initial guess of the LAST R rows (replayed rows).
        """
        B, n = input_ids.shape
        z0 = self.initial_with_replayed(B, n, input_ids.device, initial_logits)
        return self.minimize(self.energy_function(input_ids, learning), z0, (B, n, 1), learning, final_energy,
                             self.normalizer())

    def thinking_problem(self, batch, target_logit=10.0):
        """ThinkingProblem of a batch of token rows (B, C+1); the target state puts `target_logit` on the true
        token (softmax ~ one-hot), so the slice through it points at the answer."""
        inputs, targets = inputs_and_targets(batch, self.cfg.pad_token_id)
        B, n = inputs.shape
        pad = self.cfg.pad_token_id
        target = F.one_hot(targets.clamp(0, self.cfg.vocab_size - 1), self.cfg.vocab_size).float() * target_logit

        def loss(state):  # (B', n) cross-entropy, 0 at padding
            return F.cross_entropy(state.float().flatten(0, 1), targets.flatten(), ignore_index=pad,
                                   reduction="none").view(targets.shape)

        return ThinkingProblem(lambda rows: self.energy_function(inputs[rows], learning=False),
                               self.initial_state(B, n, inputs.device), target.to(inputs.device), loss,
                               self.normalizer(), (B, n, 1))

    def initial_state(self, rows, n, device, latest=None):
        """Random (or zero) initial logits (rows, n, V); a text guess does not start from the observed tokens."""
        return self.initial_logits(rows, n, device)

    def initial_with_replayed(self, B, n, device, initial_logits=None):
        """initial_state, with initial_logits (R, n, V) (replayed rows) in place of those of the last R rows."""
        z0 = self.initial_state(B, n, device)
        if initial_logits is not None:
            z0 = torch.cat([z0[:B - initial_logits.shape[0]], initial_logits.to(z0.dtype)])
        return z0

    def prediction_embedding(self):
        """(weight, vocab_first) of the map from predicted distributions to embeddings (vocab_step.py)."""
        if self.cfg.vocab_to_embed_uses_prob_dist:
            return self.embeddings.weight, True  # (V, D)
        return self.vocab_to_embed.weight, False  # (D, V)

    def think_with_losses(self, input_ids, targets, learning=False, final_energy=False, initial_logits=None,
                          keep_states=False, final_state=True):
        """`forward` with the loss after every step computed inside the fused step (model/nlp/vocab_step.py):
        the same energies and losses, without the autograd graph over (B, n, V) tensors. `states` holds
        the final logits only, those after every step with keep_states, or none with final_state=False."""
        B, n = input_ids.shape
        z0 = self.initial_with_replayed(B, n, input_ids.device, initial_logits)
        weight, vocab_first = self.prediction_embedding()
        cfg = self.cfg
        return think_over_vocabulary(
            self.embedded_energy_function(input_ids, learning), z0, weight, vocab_first, targets, cfg.pad_token_id,
            normalize=cfg.normalize_initial_condition, soften=cfg.soften_target_prob_dist if learning else 0.0,
            rows=chunk_rows(cfg.vocab_size, cfg.vocab_chunk_mb, input_ids.device), evaluate_final_energy=final_energy,
            keep_states=keep_states, final_state=final_state, **self.thinking_plan((B, n, 1), learning))

    def normalizer(self):
        return self.normalize if self.cfg.normalize_initial_condition else None

    def estimate_flops(self):
        """Training FLOPs per predicted token (model/flops.py; the paper estimates a 2-step EBT step at about
        6.66x a Transformer++ step)."""
        return autoregressive_ebt_flops(self)

    # ------------------------------------------------------------------ System 2 thinking at test time

    def advanced_inference(self, input_ids, icfg):
        """Think longer, with noise, over G samples per row; keep per position the sample chosen by its
        energy (`min` = self-verification). input_ids (B, n) -> ThinkingResult of the chosen samples."""
        B, n = input_ids.shape
        # rows b0g0, b0g1, ...: each copy gets its own initial guess
        energy_for = lambda G: self.energy_function(input_ids.repeat_interleave(G, dim=0), learning=False)
        return self.advanced_think_about(energy_for, B, n, input_ids.device, icfg)

    # ------------------------------------------------------------------ losses

    def step_loss(self, logits, targets, step, num_steps):
        """Cross-entropy after one step; soften_target_prob_dist smooths early steps' targets (docs/method.md §4.7)."""
        smoothing = 0.0
        if self.cfg.soften_target_prob_dist and num_steps > 1:
            smoothing = (num_steps - 1 - step) / (num_steps - 1) * self.cfg.soften_target_prob_dist
        return next_token_loss(logits, targets, self.cfg.pad_token_id, smoothing)

    def contrastive_loss(self, input_ids, targets, fake_energies):
        """Rank the true next token's energy below the final prediction's (docs/method.md §4.6, off by default)."""
        true_dist = F.one_hot(targets.clamp(min=0), self.cfg.vocab_size).to(self.embeddings.weight.dtype)
        energy = self.energy_function(input_ids, learning=True)
        true_energies = energy(true_dist, self.cfg.mcmc_num_steps - 1)  # (B, n)
        scores = -torch.stack([true_energies, fake_energies], dim=-1)  # (B, n, 2): real is class 0
        labels = torch.zeros_like(targets).masked_fill(targets == self.cfg.pad_token_id, -100)
        return F.cross_entropy(scores.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        """Loss and logs for a batch of token rows (B, C+1) (docs/method.md §2.7).

        final_energy (default: outside training) adds `final_energy`, the energy after thinking.
        inference: an InferenceConfig to think with System 2 at test time (--infer_ebt_advanced).
        """
        if inference is not None:
            inputs, targets = inputs_and_targets(batch, self.cfg.pad_token_id)
            return self._loss_report(self.advanced_inference(inputs, inference), targets, inputs, False, True)
        training = phase == "train"  # no second-order graph and no S2 randomness outside training
        replayed_logits = None
        # answer-masked (finetuning) rows are not replayed: the buffer keeps whole pretraining rows
        replay = self.cfg.mcmc_replay_buffer and training and "loss_mask" not in batch
        if replay:
            fresh_rows = batch["input_ids"]
            rows, replayed_logits = self.replay_buffer.sample(fresh_rows)
            batch = {"input_ids": rows}
        inputs, targets = inputs_and_targets(batch, self.cfg.pad_token_id)
        final_energy = not training if final_energy is None else final_energy
        if self.cfg.uses_fused_vocab_step:
            # only the replay buffer reads the final logits
            result = self.think_with_losses(inputs, targets, training, final_energy, replayed_logits, final_state=replay)
        else:
            result = self(inputs, learning=training, final_energy=final_energy, initial_logits=replayed_logits)
        if replay:
            self.replay_buffer.add(fresh_rows, result.states[-1][:fresh_rows.shape[0]])
        return self._loss_report(result, targets, inputs, training, final_energy)

    def _loss_report(self, result, targets, inputs, training, final_energy):
        T = len(result.losses or result.states)
        # smoothing shapes training only: evaluation reports plain cross-entropy and perplexity
        smoothed_steps = T if training else 1
        step_losses = torch.stack(result.losses or [self.step_loss(z, targets, i, smoothed_steps)
                                                     for i, z in enumerate(result.states)])
        not_pad = (targets != self.cfg.pad_token_id).float()
        token_mean = lambda e: (e * not_pad).sum() / not_pad.sum().clamp(min=1)
        out = self.thinking_report(result, step_losses, final_energy, mean=token_mean)
        if self.cfg.contrastive_loss and training:
            contrastive = self.contrastive_loss(inputs, targets, result.energies[-1])
            out["loss"] = out["loss"] + self.cfg.contrastive_loss_coeff * contrastive
            out["contrastive_loss"] = contrastive.detach()
        return {**out, "perplexity": out["final_step_loss"].exp(),
                "count": count_target_tokens(targets, self.cfg.pad_token_id)}
