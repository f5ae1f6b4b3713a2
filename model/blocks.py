"""Llama-style building blocks shared by the Transformer++ and the EBTs (docs/method.md §3.1).

RMSNorm -> rotary embedding -> attention projections -> SwiGLU -> pre-norm block (optionally adaLN
modulated). The attention *kernel* is not chosen here: a block receives an `attend(q, k, v)` callable
(see model/attention.py), so one block serves causal, masked-reference and EBT prediction attention.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.attention import upcast


def init_linear(linear, method="xavier", gain=1.0, chunks=1):
    """Published init: xavier-normal (or kaiming-normal with 'he') weights times gain, zero bias.

    chunks > 1: a fused projection (e.g. q|k|v) is initialised as that many separate matrices, so it
    matches the published unfused layers.
    """
    for weight in linear.weight.data.chunk(chunks, dim=0):
        if method == "xavier":
            nn.init.xavier_normal_(weight)
        elif method == "he":
            nn.init.kaiming_normal_(weight)
        else:
            raise ValueError(f"unknown weight_initialization_method {method!r}; use xavier or he")
    if gain != 1.0:
        with torch.no_grad():
            linear.weight.mul_(gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# ----------------------------------------------------------------------------- normalisation

class RMSNorm(nn.Module):
    """y = x / rms(x) * weight, computed in float32."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = upcast(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def modulate(x, shift, scale):
    """adaLN: x * (1 + scale) + shift, broadcast over the sequence. x (B,T,D), shift/scale (B|1,1,D)."""
    return x * (1 + scale) + shift


# ----------------------------------------------------------------------------- rotary embedding

class RotaryEmbedding(nn.Module):
    """Llama-2 RoPE: adjacent pairs (x0, x1), (x2, x3), ... rotate by position * theta^(-2k/h)."""

    def __init__(self, head_dim, max_seq_len, theta=10000.0):
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (h/2,)
        angles = torch.outer(torch.arange(max_seq_len).float(), freqs).repeat_interleave(2, dim=-1)  # (T, h)
        sign = torch.tensor([-1.0, 1.0]).repeat(head_dim // 2)  # pair (x0, x1) -> (-x1 sin, +x0 sin)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("signed_sin", angles.sin() * sign, persistent=False)

    def forward(self, x, positions):
        """x (..., T, h), positions (T,) long -> x rotated, same dtype."""
        if not torch.compiler.is_compiling() and positions.numel() and int(positions.max()) >= self.cos.shape[0]:
            raise ValueError(f"position {int(positions.max())} exceeds the rotary table ({self.cos.shape[0]}); "
                             "raise --context_length")
        xf = upcast(x)
        swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0, x3, x2, ...)
        return (xf * self.cos[positions] + swapped * self.signed_sin[positions]).type_as(x)


# ----------------------------------------------------------------------------- attention and MLP

class AttentionProjections(nn.Module):
    """Multi-head attention projections without biases (q|k|v fused); the kernel is supplied by the caller."""

    def __init__(self, dim, n_heads, init_method="xavier", init_gain=1.0):
        super().__init__()
        self.n_heads = n_heads
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        init_linear(self.wqkv, init_method, init_gain, chunks=3)
        init_linear(self.wo, init_method, init_gain)

    def _heads(self, t, parts):
        B, T, _ = t.shape
        return t.view(B, T, parts, self.n_heads, -1).permute(2, 0, 3, 1, 4)  # (parts, B, H, T, h)

    def keys_values(self, x, rope, positions):
        """Rotated keys and values (B,H,T,h) of x (B,T,D), without computing queries."""
        D = x.shape[-1]
        k, v = self._heads(F.linear(x, self.wqkv.weight[D:]), 2)
        return rope(k, positions), v

    def forward(self, x, rope, positions, attend):
        """x (B,T,D) -> attend(q, k, v) over heads -> (B,T,D). q/k are rotated at `positions`."""
        qkv = self._heads(self.wqkv(x), 3)
        q, k = rope(qkv[:2], positions)
        v = qkv[2]
        out = attend(q, k, v)  # (B, H, T, h)
        return self.wo(out.transpose(1, 2).flatten(-2))


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x), w1|w3 fused; hidden F = D unless ffn_dim_multiplier is given (docs/method.md §3.1)."""

    def __init__(self, dim, hidden_dim, init_method="xavier", init_gain=1.0):
        super().__init__()
        self.w13 = nn.Linear(dim, 2 * hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        init_linear(self.w13, init_method, init_gain, chunks=2)
        init_linear(self.w2, init_method, init_gain)

    def forward(self, x):
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


def ffn_hidden_dim(dim, ffn_dim_multiplier=None):
    return dim if ffn_dim_multiplier is None else int(dim * ffn_dim_multiplier)


# ----------------------------------------------------------------------------- block

class Block(nn.Module):
    """Pre-norm block h = x + Attn(norm(x)); out = h + FFN(norm(h)), optionally adaLN(-Zero) modulated."""

    def __init__(self, dim, n_heads, hidden_dim, norm_eps=1e-5, adaln=False, adaln_zero=False,
                 init_method="xavier", init_gain=1.0):
        super().__init__()
        self.attention_norm = RMSNorm(dim, norm_eps)
        self.attention = AttentionProjections(dim, n_heads, init_method, init_gain)
        self.ffn_norm = RMSNorm(dim, norm_eps)
        self.feed_forward = SwiGLU(dim, hidden_dim, init_method, init_gain)
        # adaLN: shift/scale/gate for attention and MLP from a condition vector (DiT style, docs/method.md §3.4)
        self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) if adaln else None
        if adaln_zero:
            nn.init.zeros_(self.adaln_modulation[1].weight)
            nn.init.zeros_(self.adaln_modulation[1].bias)

    def _modulation(self, condition):
        return self.adaln_modulation(condition).unsqueeze(1).chunk(6, -1)  # 6 x (B|1, 1, D)

    def keys_values(self, x, rope, positions, condition=None):
        """Only the keys/values this block's attention would compute (the EBT's last observed layer)."""
        h = self.attention_norm(x)
        if self.adaln_modulation is not None:
            shift_a, scale_a = self._modulation(condition)[:2]
            h = modulate(h, shift_a, scale_a)
        return self.attention.keys_values(h, rope, positions)

    def forward(self, x, rope, positions, attend, condition=None):
        """x (B,T,D); condition (B|1, D) for adaLN blocks."""
        if self.adaln_modulation is None:
            h = x + self.attention(self.attention_norm(x), rope, positions, attend)
            return h + self.feed_forward(self.ffn_norm(h))
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self._modulation(condition)
        h = x + gate_a * self.attention(modulate(self.attention_norm(x), shift_a, scale_a), rope, positions, attend)
        return h + gate_f * self.feed_forward(modulate(self.ffn_norm(h), shift_f, scale_f))
