"""Autoregressive Energy-Based Transformer for language (spec 2.1-2.10).

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

from model.ar_ebt import AutoregressiveEBT
from model.blocks import init_linear
from model.config import EBTConfig
from model.nlp.common import count_target_tokens, inputs_and_targets, next_token_loss
from model.replay_buffer import CausalReplayBuffer
from model.thinking import landscape_schedule, think

MIN_STEP_SIZE = 1e-4  # alpha is clamped here so a learnable step size cannot go negative
MIN_LANGEVIN_STD = 1e-6


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
        # learnable only after warm-up, if asked (spec 2.10)
        self.langevin_dynamics_noise_std = nn.Parameter(torch.tensor(float(cfg.langevin_dynamics_noise)),
                                                        requires_grad=False)
        self.grad_clamp_max_change = cfg.clamp_futures_grad_max_change
        if cfg.mcmc_replay_buffer:
            self.replay_buffer = CausalReplayBuffer(
                cfg.mcmc_replay_buffer_size, cfg.context_length + 1, V,
                int(cfg.batch_size_per_device * cfg.mcmc_replay_buffer_sample_bs_percent))

    def num_evaluation_steps(self):
        """Thinking steps outside training (the maximum of a randomised schedule)."""
        c = self.cfg
        return len(landscape_schedule(c.mcmc_num_steps, c.randomize_mcmc_num_steps, training=False))

    def warm_up_finished(self):
        """Called once when the LR warm-up ends (spec 2.10)."""
        if self.cfg.clamp_max_after_warm_up:
            self.grad_clamp_max_change = self.cfg.clamp_max_after_warm_up
        if self.cfg.langevin_dynamics_noise_learnable:
            self.langevin_dynamics_noise_std.requires_grad_(True)

    @staticmethod
    def normalize(logits):
        """With normalize_initial_condition the energy sees probabilities (and dE/dp is taken, spec 2.6)."""
        return torch.softmax(logits, dim=-1)

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

    def step_size(self, batch_size, n, randomize):
        """alpha, or per (row, position) alpha ~ U[alpha/s, alpha*s] when training with scale s != 1."""
        alpha = self.alpha.clamp(min=MIN_STEP_SIZE)
        s = self.cfg.randomize_mcmc_step_size_scale
        if not randomize or s == 1:
            return alpha
        u = torch.rand(batch_size, n, 1, device=alpha.device, dtype=alpha.dtype)
        return alpha / s + u * (alpha * s - alpha / s)

    def forward(self, input_ids, learning=False, final_energy=False, initial_logits=None):
        """Think about the next token at every position. input_ids (B, n) -> ThinkingResult.

        `states[i]` are the logits (B, n, V) after step i; `energies[i]` (B, n) the energy of the
        prediction that step started from; with final_energy, `final_energy` that of the last prediction.
        learning=True means training: the second-order graph and the System 2 randomness.
        initial_logits (R, n, V) replace the initial guess of the LAST R rows (replayed rows).
        """
        B, n = input_ids.shape
        return self.think_about(self.energy_function(input_ids, learning), B, n, input_ids.device, learning,
                                final_energy, initial_logits)

    def think_about(self, energy_fn, B, n, device, learning=False, final_energy=False, initial_logits=None):
        """The thinking of `forward` for any energy function over (B, n) predictions (e.g. a KV cache's)."""
        cfg = self.cfg
        z0 = self.initial_logits(B, n, device)
        if initial_logits is not None:
            z0 = torch.cat([z0[:B - initial_logits.shape[0]], initial_logits.to(z0.dtype)])
        langevin = None
        if cfg.langevin_dynamics_noise and (learning or not cfg.no_langevin_during_eval):
            langevin = self.langevin_dynamics_noise_std.clamp(min=MIN_LANGEVIN_STD)
        grad_clamp = None
        if cfg.clamp_futures_grad:  # published: relative to the unrandomised alpha
            grad_clamp = self.grad_clamp_max_change / self.alpha.clamp(min=MIN_STEP_SIZE)
        return think(
            energy_fn,
            z0,
            step_size=self.step_size(B, n, randomize=learning),
            landscapes=landscape_schedule(cfg.mcmc_num_steps, cfg.randomize_mcmc_num_steps,
                                          cfg.randomize_mcmc_num_steps_min,
                                          cfg.randomize_mcmc_num_steps_final_landscape, training=learning),
            create_graph=learning,
            normalize=self.normalize if cfg.normalize_initial_condition else None,
            detach_between_steps=not cfg.no_mcmc_detach,
            truncate=cfg.truncate_mcmc,
            langevin_std=langevin,
            grad_clamp=grad_clamp,
            state_clamp=cfg.absolute_clamp or None,
            evaluate_final_energy=final_energy,
        )

    # ------------------------------------------------------------------ System 2 thinking at test time

    def inference_plan(self, icfg):
        """(landscapes, step sizes, noise stds) per step for --infer_ebt_advanced (spec 4.1, 4.2)."""
        cfg, trained = self.cfg, self.alpha.detach()
        a = icfg.infer_ebt_override_alpha
        adjusted = trained * a if 0 < a < 1 else (torch.full_like(trained, a) if a >= 1 else trained)
        if cfg.ebt_type == "default":  # no landscape index: just more steps
            steps = icfg.infer_ebt_num_steps if icfg.infer_ebt_num_steps > 1 else cfg.mcmc_num_steps
            landscapes, alphas = [0] * steps, [adjusted] * steps
        else:
            landscapes, alphas = [], []
            inner = icfg.infer_ebt_num_steps
            if inner == 1:  # as trained: the smallest random step count of an S2 model, else one
                inner = cfg.randomize_mcmc_num_steps_min or 1
            for k in range(cfg.mcmc_num_steps):
                final = k == cfg.mcmc_num_steps - 1
                alpha = trained if icfg.infer_alpha_final_landscape and not final else adjusted
                repeats = 1 if icfg.infer_steps_final_landscape and not final else inner
                landscapes += [k] * repeats
                alphas += [alpha] * repeats
        std = icfg.infer_langevin_dynamics_noise or float(self.langevin_dynamics_noise_std)
        noise = [torch.tensor(std) if std and (i == 0 or not icfg.infer_langevin_first_step) else None
                 for i in range(len(landscapes))]
        return landscapes, alphas, noise

    def advanced_inference(self, input_ids, icfg):
        """Think longer, with noise, over G samples per row; keep per position the sample chosen by its
        energy (`min` = self-verification). input_ids (B, n) -> ThinkingResult of the chosen samples."""
        B, n = input_ids.shape
        # rows b0g0, b0g1, ...: each copy gets its own initial guess
        energy_for = lambda G: self.energy_function(input_ids.repeat_interleave(G, dim=0), learning=False)
        return self.advanced_think_about(energy_for, B, n, input_ids.device, icfg)

    def advanced_think_about(self, energy_for, B, n, device, icfg):
        """advanced_inference for any energy function; energy_for(G) serves the B*G repeated rows."""
        G = icfg.infer_generated_samples
        landscapes, alphas, noise = self.inference_plan(icfg)
        result = think(
            energy_for(G), self.initial_logits(B * G, n, device), alphas,
            landscapes, create_graph=False,
            normalize=self.normalize if self.cfg.normalize_initial_condition else None,
            langevin_std=[s.to(device) if s is not None else None for s in noise],
            accept_lower_energies=icfg.infer_accept_lower_energies, evaluate_final_energy=True)
        final, initial = result.final_energy.view(B, G, n), result.energies[0].view(B, G, n)
        technique = icfg.infer_energy_sampling_technique
        choice = {"min": lambda: final.argmin(1), "max": lambda: final.argmax(1),
                  "max_gap": lambda: (initial - final).argmax(1)}[technique]()  # (B, n)

        def chosen(t):  # (B*G, n, ...) -> (B, n, ...)
            t = t.view(B, G, n, *t.shape[2:])
            index = choice.view(B, 1, n, *[1] * (t.dim() - 3)).expand(B, 1, n, *t.shape[3:])
            return t.gather(1, index).squeeze(1)

        return type(result)(states=[chosen(s) for s in result.states], energies=[chosen(e) for e in result.energies],
                            final_energy=chosen(result.final_energy))

    def num_inference_steps(self, icfg):
        return len(self.inference_plan(icfg)[0])

    # ------------------------------------------------------------------ losses

    def step_loss(self, logits, targets, step, num_steps):
        """Cross-entropy after one step; soften_target_prob_dist smooths early steps' targets (spec 2.7)."""
        smoothing = 0.0
        if self.cfg.soften_target_prob_dist and num_steps > 1:
            smoothing = (num_steps - 1 - step) / (num_steps - 1) * self.cfg.soften_target_prob_dist
        return next_token_loss(logits, targets, self.cfg.pad_token_id, smoothing)

    def contrastive_loss(self, input_ids, targets, fake_energies):
        """Rank the true next token's energy below the final prediction's (spec 2.8, off by default)."""
        true_dist = F.one_hot(targets.clamp(min=0), self.cfg.vocab_size).to(self.embeddings.weight.dtype)
        energy = self.energy_function(input_ids, learning=True)
        true_energies = energy(true_dist, self.cfg.mcmc_num_steps - 1)  # (B, n)
        scores = -torch.stack([true_energies, fake_energies], dim=-1)  # (B, n, 2): real is class 0
        labels = torch.zeros_like(targets).masked_fill(targets == self.cfg.pad_token_id, -100)
        return F.cross_entropy(scores.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        """Loss and logs for a batch of token rows (B, C+1) (spec 2.7).

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
        result = self(inputs, learning=training, final_energy=final_energy, initial_logits=replayed_logits)
        if replay:
            self.replay_buffer.add(fresh_rows, result.states[-1][:fresh_rows.shape[0]])
        return self._loss_report(result, targets, inputs, training, final_energy)

    def _loss_report(self, result, targets, inputs, training, final_energy):
        T = len(result.states)
        # smoothing shapes training only: evaluation reports plain cross-entropy and perplexity
        smoothed_steps = T if training else 1
        step_losses = torch.stack([self.step_loss(z, targets, i, smoothed_steps) for i, z in enumerate(result.states)])
        loss = step_losses[-1] if self.cfg.truncate_mcmc else step_losses.mean()
        out = {}
        if self.cfg.contrastive_loss and training:
            out["contrastive_loss"] = self.contrastive_loss(inputs, targets, result.energies[-1])
            loss = loss + self.cfg.contrastive_loss_coeff * out["contrastive_loss"]
            out["contrastive_loss"] = out["contrastive_loss"].detach()

        not_pad = (targets != self.cfg.pad_token_id).float()
        token_mean = lambda e: (e.detach() * not_pad).sum() / not_pad.sum().clamp(min=1)
        step_energies = torch.stack([token_mean(e) for e in result.energies])
        final = step_losses[-1].detach()
        if final_energy:
            out["final_energy"] = token_mean(result.final_energy)
        return {
            **out,
            "loss": loss,
            "initial_loss": step_losses[0].detach(),
            "final_step_loss": final,
            "perplexity": final.exp(),
            "initial_final_pred_energies_gap": step_energies[0] - step_energies[-1],
            "step_losses": step_losses.detach(),  # (T,) loss after each thinking step
            "step_energies": step_energies,  # (T,) mean energy each step started from
            "num_tokens": count_target_tokens(targets, self.cfg.pad_token_id),
        }
