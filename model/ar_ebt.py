"""Autoregressive EBT trunk: per-position energies E_i(observed_<=i, prediction_i) (docs/method.md §3.2-3.4).

The sequence is [observed; predictions], with one extra leading "time" token for ebt_type time_embed:

    inputs     [t] o_0 o_1 ... o_{n-1}   p_0 p_1 ... p_{n-1}
    positions  [0] P   P+1     P+n-1     P+1 P+2     P+n        (P = 1 with the time token, else 0)

Observed tokens attend causally among themselves (and to t); prediction i attends to t, o_0..o_i and to
itself only, and sits at the position of the token it predicts. So E_i depends only on o_<=i and p_i.

Two implementations, kept side by side and tested against each other:
- fast (`observe` once, then `energies` per thinking step): the observed stream never depends on the
  predictions, so its per-layer keys/values are computed once per landscape and reused by every step;
  each step runs only the n prediction tokens against that cache.
- reference (`reference_energies`): one masked attention over the whole sequence, recomputed every
  step. Slow and obviously correct.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from model.attention import (causal_attention, ebt_attention_mask, masked_attention,
                             prediction_attention)
from model.blocks import Block, RMSNorm, RotaryEmbedding, ffn_hidden_dim, init_linear, modulate


def energy_of_embedded(energy, embed):
    """E(embed(prediction), landscape) for an `AutoregressiveEBT.energy_function` `energy`, keeping its
    `observe` (what a recomputed thinking step computes first)."""
    composed = lambda prediction, landscape: energy(embed(prediction), landscape)
    composed.observe = energy.observe
    return composed


@dataclass
class ObservedCache:
    """Per-layer rotated keys and values of the observed tokens, each (B, H, S, h)."""
    keys: list
    values: list


class AutoregressiveEBT(nn.Module):
    """Llama-style trunk + energy head; `ebt_type` default | time_embed | adaln | adaln_zero."""

    def __init__(self, cfg):
        super().__init__()
        D, L = cfg.embedding_dim, cfg.num_transformer_blocks
        self.ebt_type = cfg.ebt_type
        adaln = cfg.ebt_type in ("adaln", "adaln_zero")
        self.offset = 1 if cfg.ebt_type == "time_embed" else 0  # leading non-token inputs
        # the landscape index conditions the observed stream too, except for the default type
        self.observed_depends_on_landscape = cfg.ebt_type != "default"
        if cfg.ebt_type != "default":
            self.time_embeddings = nn.Embedding(cfg.mcmc_num_steps, D)  # N(0, 1), as published
        self.layers = nn.ModuleList(
            Block(D, cfg.multiheaded_attention_heads, ffn_hidden_dim(D, cfg.ffn_dim_multiplier),
                  adaln=adaln, adaln_zero=cfg.ebt_type == "adaln_zero",
                  init_method=cfg.weight_initialization_method, init_gain=cfg.weight_initialization_gain)
            for _ in range(L))
        self.norm = RMSNorm(D)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D)) if adaln else None
        self.energy_head = nn.Linear(D, 1, bias=False)
        init_linear(self.energy_head, cfg.weight_initialization_method)  # gain not applied, as published
        if cfg.ebt_type == "adaln_zero":  # energies start at exactly 0
            nn.init.zeros_(self.final_modulation[1].weight)
            nn.init.zeros_(self.final_modulation[1].bias)
            nn.init.zeros_(self.energy_head.weight)
        self.rope = RotaryEmbedding(D // cfg.multiheaded_attention_heads, cfg.context_length + 2)

    # -------------------------------------------------------------------------- shared pieces

    def _condition(self, landscape):
        """adaLN condition vector (1, D) for a landscape index, else None."""
        if self.final_modulation is None:
            return None
        return self.time_embeddings.weight[landscape].unsqueeze(0)

    def _observed_tokens(self, observed, landscape):
        """Prepend the landscape's time token for time_embed. (B, n, D) -> (B, n + offset, D)."""
        if self.offset == 0:
            return observed
        time_token = self.time_embeddings.weight[landscape].expand(observed.shape[0], 1, -1)
        return torch.cat([time_token, observed], dim=1)

    def _prediction_positions(self, n, device):
        return torch.arange(self.offset + 1, self.offset + 1 + n, device=device)

    def _energy_head(self, h, condition):
        """Final norm (+ adaLN) and the scalar head. h (B, n, D) -> (B, n)."""
        h = self.norm(h)
        if self.final_modulation is not None:
            shift, scale = self.final_modulation(condition).unsqueeze(1).chunk(2, -1)
            h = modulate(h, shift, scale)
        return self.energy_head(h).squeeze(-1)

    # -------------------------------------------------------------------------- fast path

    def observe(self, observed, landscape=0):
        """Run the observed stream once; return its per-layer keys/values. observed (B, n, D)."""
        x = self._observed_tokens(observed, landscape)  # (B, S, D)
        positions = torch.arange(x.shape[1], device=x.device)
        condition = self._condition(landscape)
        cache = ObservedCache([], [])

        def attend_and_store(q, k, v):
            cache.keys.append(k)
            cache.values.append(v)
            return causal_attention(q, k, v)

        for layer in self.layers[:-1]:
            x = layer(x, self.rope, positions, attend_and_store, condition)
        k, v = self.layers[-1].keys_values(x, self.rope, positions, condition)  # its outputs are never used
        cache.keys.append(k)
        cache.values.append(v)
        return cache

    def observe_next(self, cache, observed, landscape=0, length=None):
        """Keys/values of ONE new observed token (B, 1, D) that follows the first `length` cache entries.

        The cache may be preallocated longer than `length` (its later entries are ignored); `length` may
        be a 0-dim tensor so that a compiled decoder serves every position with one graph. Returns a list
        of per-layer (keys, values), each (B, H, 1, h), for the caller to store at index `length`.
        """
        length = cache.keys[0].shape[-2] if length is None else length
        positions = length + torch.zeros(1, dtype=torch.long, device=observed.device)
        condition = self._condition(landscape)
        x, new = observed, []

        def attend(q, k, v, k_o, v_o):  # cached entries j < length, then itself: the prediction pattern
            new.append((k, v))
            return prediction_attention(q, k, v, k_o, v_o, length - 1)

        for layer, k_o, v_o in zip(self.layers[:-1], cache.keys, cache.values):
            x = layer(x, self.rope, positions, lambda q, k, v, k_o=k_o, v_o=v_o: attend(q, k, v, k_o, v_o), condition)
        new.append(self.layers[-1].keys_values(x, self.rope, positions, condition))  # only its keys/values are used
        return new

    def energies(self, cache, predicted, landscape=0, start=0):
        """Energies of predictions for positions start, start+1, ... against a cached observed stream.

        predicted (B, m, D) -> (B, m). Training uses start=0 and all n positions; generation thinks about
        the last position only (start = n - 1).
        """
        positions = self._prediction_positions(predicted.shape[1], predicted.device) + start
        condition = self._condition(landscape)
        x = predicted
        for layer, k_o, v_o in zip(self.layers, cache.keys, cache.values):
            attend = lambda q, k, v, k_o=k_o, v_o=v_o: prediction_attention(q, k, v, k_o, v_o, self.offset + start)
            x = layer(x, self.rope, positions, attend, condition)
        return self._energy_head(x, condition)

    def energy_function(self, observed, learning, reference=False):
        """E(embedded predictions (B, n, D), landscape) -> (B, n) against embedded observed tokens (B, n, D), the
        energy every thinking step of a batch calls. Fast path: the observed stream is computed once per
        landscape that conditions it and reused by every step (without a graph outside training);
        reference=True: the oracle twin, one masked attention over both streams per call.

        The function's `observe(landscape)` computes that shared part now (a step whose energy gradient is
        recomputed in the backward pass computes it first, outside the recomputed region: model/thinking.py)."""
        if reference:
            energy = lambda predicted, landscape: self.reference_energies(observed, predicted, landscape)
            energy.observe = lambda landscape: None  # nothing is shared between steps
            return energy
        caches = {}  # observed keys/values, per landscape where the landscape conditions them

        def observe(landscape):
            key = landscape if self.observed_depends_on_landscape else None
            if key not in caches:
                with torch.set_grad_enabled(learning):  # evaluation needs no graph through the cache
                    caches[key] = self.observe(observed, landscape)
            return caches[key]

        def energy(predicted, landscape):
            return self.energies(observe(landscape), predicted, landscape)

        energy.observe = observe
        return energy

    # -------------------------------------------------------------------------- reference path

    def reference_energies(self, observed, predicted, landscape=0):
        """Same energies from one masked attention over [observed; predictions]. (B, n, D) x2 -> (B, n)."""
        obs = self._observed_tokens(observed, landscape)
        S, n = obs.shape[1], predicted.shape[1]
        x = torch.cat([obs, predicted], dim=1)
        positions = torch.cat([torch.arange(S, device=x.device), self._prediction_positions(n, x.device)])
        allowed = ebt_attention_mask(S, n, self.offset, device=x.device)
        condition = self._condition(landscape)
        for layer in self.layers:
            x = layer(x, self.rope, positions, lambda q, k, v: masked_attention(q, k, v, allowed), condition)
        return self._energy_head(x[:, S:], condition)
