"""Attention kernels, in one place, with what each may be used for.

EBT training differentiates through an input gradient (second order). Fused SDPA kernels (flash,
memory-efficient, the CPU flash kernel) have no double backward, so every tensor that the energy
gradient depends on through the *prediction* stream must go through `masked_attention` (explicit
matmul + softmax). The observed stream of an EBT never depends on the predictions, so autograd never
differentiates it twice and it may use the fused `causal_attention`, like the Transformer++.
"""
import torch
import torch.nn.functional as F


def upcast(x):
    """Softmax/norm math in at least float32 (bf16/fp16 inputs), keeping float64 for gradient checks."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def masked_attention(q, k, v, allowed):
    """Explicit softmax attention, double-backward safe. q (B,H,Tq,h), k/v (B,H,Tk,h), allowed (Tq,Tk) bool."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(upcast(scores), dim=-1).type_as(q)
    return weights @ v


def causal_attention(q, k, v):
    """Fused causal attention (first-order paths only: Transformer++, the EBT observed stream)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def prediction_attention(q_p, k_p, v_p, k_o, v_o, offset):
    """EBT prediction stream: prediction i attends to observed keys j <= i + offset and to itself.

    q_p/k_p/v_p (B,H,n,h) come from the predictions; k_o/v_o (B,H,S,h) are the cached observed
    keys/values (S = n + offset, offset = number of leading non-token inputs such as the time token;
    S may be larger, e.g. a preallocated decoding cache: keys past i + offset are masked out).
    Equivalent to one masked attention over [observed; predictions] (see `ebt_attention_mask`), but
    never materialises the prediction x prediction block, of which only the diagonal is allowed.
    """
    n, S = q_p.shape[-2], k_o.shape[-2]
    q_p = q_p * q_p.shape[-1] ** -0.5
    observed_scores = q_p @ k_o.transpose(-2, -1)  # (B, H, n, S)
    # j <= i + offset; offset may be a 0-dim tensor (compiled decoding, one graph for every position)
    allowed = (torch.arange(S, device=q_p.device)[None, :]
               <= torch.arange(n, device=q_p.device)[:, None] + offset)
    observed_scores = observed_scores.masked_fill(~allowed, float("-inf"))
    self_scores = (q_p * k_p).sum(-1, keepdim=True)  # (B, H, n, 1)
    weights = torch.softmax(upcast(torch.cat([observed_scores, self_scores], dim=-1)), dim=-1).type_as(q_p)
    return weights[..., :S] @ v_o + weights[..., S:] * v_p


def ebt_attention_mask(num_observed, num_predictions, offset, device=None):
    """Boolean mask over [observed (S tokens); predictions (n tokens)] for the slow reference path.

    observed i -> observed j iff j <= i; prediction i -> observed j iff j <= i + offset; prediction i ->
    prediction i only (docs/method.md §3.2).
    """
    S, n = num_observed, num_predictions
    mask = torch.zeros(S + n, S + n, dtype=torch.bool, device=device)
    mask[:S, :S] = torch.ones(S, S, dtype=torch.bool, device=device).tril()
    mask[S:, :S] = torch.ones(n, S, dtype=torch.bool, device=device).tril(diagonal=offset)
    mask[S:, S:] = torch.eye(n, dtype=torch.bool, device=device)
    return mask


def append_attention(q, k, v, cache_k, cache_v):
    """New tokens attend to cached keys/values and causally among themselves (KV-cached decoding;
    first-order only). q/k/v (B,H,m,h), cache_k/v (B,H,S,h) -> output (B,H,m,h), keys, values (B,H,S+m,h)."""
    keys, values = torch.cat([cache_k, k], dim=-2), torch.cat([cache_v, v], dim=-2)
    m, S = q.shape[-2], cache_k.shape[-2]
    allowed = torch.ones(m, S + m, dtype=torch.bool, device=q.device).tril(diagonal=S)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed), keys, values


def bidirectional_attention(q, k, v):
    """Explicit softmax attention without a mask, double-backward safe (bidirectional EBT, DiT). q/k/v (B,H,T,h)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, T, T)
    weights = torch.softmax(upcast(scores), dim=-1).type_as(q)
    return weights @ v
