"""DiT-style pieces shared by the bidirectional EBT and the DiT baseline (docs/method.md §7.2, §7.4).

    image (B, C, S, S) -> patch embedding + fixed 2D sin-cos positions -> (B, T, D), T = (S/p)^2
    -> adaLN-Zero blocks, each modulated by a condition vector c (B|1, D)
    -> final layer (norm, adaLN shift/scale, Linear) -> (B, T, out_dim)

The EBT averages per-patch scalar energies (out_dim 1); the DiT predicts p*p*C' values per patch and
`unpatchify`s them back into an image. Init follows DiT: xavier-uniform Linear weights, zero biases,
zero-initialised adaLN modulation and output layer (so both networks output exactly 0 at init).
Attention is the explicit softmax kernel: the EBT differentiates through it twice (model/attention.py).
"""
import torch
import torch.nn as nn

from model.attention import bidirectional_attention
from model.blocks import modulate

# ----------------------------------------------------------------------------- size presets

def init_dit_linear(linear):
    """DiT init: xavier-uniform weight (fused q|k|v as one matrix, as DiT does), zero bias."""
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def zero_linear(linear):
    nn.init.zeros_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# ----------------------------------------------------------------------------- patches and positions

class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> tokens: (B, C, S, S) -> (B, T, D), tokens in row-major patch order."""

    def __init__(self, input_size, patch_size, in_channels, dim):
        super().__init__()
        if input_size % patch_size:
            raise ValueError(f"image side {input_size} is not divisible by patch_size {patch_size}")
        self.input_size, self.in_channels = input_size, in_channels
        self.grid_size = input_size // patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=True)
        nn.init.xavier_uniform_(self.proj.weight.view(dim, -1))  # as the Linear it is: (D, C*p*p)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        C, H, W = x.shape[1:]
        if H != W:
            raise ValueError(f"only square images are supported, got H={H}, W={W}")
        if C != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got {C}")
        if H != self.input_size:
            raise ValueError(f"the model was built for {self.input_size}x{self.input_size} images, got {H}x{W}")
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, G, G) -> (B, T, D)


def sincos_1d(dim, positions):
    """[sin(pos * w_k), cos(pos * w_k)], w_k = 1 / 10000^(2k/dim), k < dim/2. positions (N,) -> (N, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = torch.outer(positions.to(torch.float64), omega)  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d_table(dim, grid_size):
    """MAE 2D sin-cos table (T, dim), T = grid_size^2 in row-major order.

    The first dim/2 channels encode the patch's column (x), the last dim/2 its row (y), as MAE/DiT do.
    """
    if dim % 4:
        raise ValueError(f"the 2D sin-cos table needs dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)


def patchify(images, patch_size):
    """(B, C, S, S) -> (B, T, p*p*C), each patch vector laid out (p_row, p_col, C); inverse of `unpatchify`."""
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(tokens, patch_size, channels):
    """(B, T, p*p*C) -> (B, C, S, S), S = sqrt(T) * p (DiT's layout: patch vector is (p_row, p_col, C))."""
    B, T, _ = tokens.shape
    p, G = patch_size, int(round(T ** 0.5))
    if G * G != T:
        raise ValueError(f"{T} tokens do not form a square grid")
    x = tokens.reshape(B, G, G, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(B, channels, G * p, G * p)


# ----------------------------------------------------------------------------- timestep embedding

class TimestepEmbedder(nn.Module):
    """Diffusion step t (B,) -> (B, D): 256-dim sinusoidal features -> Linear -> SiLU -> Linear."""

    def __init__(self, dim, frequency_dim=256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        for linear in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    @staticmethod
    def frequency_embedding(t, dim, max_period=10000):
        """[cos(t * f_k), sin(t * f_k)], f_k = max_period^(-k / (dim/2)). t (B,) -> (B, dim) float64."""
        half = dim // 2
        freqs = torch.exp(-torch.log(torch.tensor(float(max_period), dtype=torch.float64))
                          * torch.arange(half, dtype=torch.float64, device=t.device) / half)
        angles = t.to(torch.float64)[:, None] * freqs[None]  # (B, half)
        embedding = torch.cat([angles.cos(), angles.sin()], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t):
        weight = self.mlp[0].weight
        return self.mlp(self.frequency_embedding(t, self.frequency_dim).to(weight.dtype))


# ----------------------------------------------------------------------------- adaLN-Zero block

class SelfAttention(nn.Module):
    """Multi-head bidirectional self-attention with q|k|v bias; explicit softmax (double-backward safe)."""

    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        init_dit_linear(self.qkv)
        init_dit_linear(self.proj)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, h)
        out = bidirectional_attention(q, k, v)  # (B, H, T, h)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    """fc2(GELU_tanh(fc1 x)), hidden width int(D * mlp_ratio)."""

    def __init__(self, dim, mlp_ratio):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        init_dit_linear(self.fc1)
        init_dit_linear(self.fc2)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class AdaLNBlock(nn.Module):
    """DiT block: x + gate * Attn(modulate(LN(x))), then the same for the MLP; all 6 from SiLU -> Linear(c)."""

    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attention = SelfAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, mlp_ratio)
        self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        zero_linear(self.adaln_modulation[1])  # adaLN-Zero: every block starts as the identity

    def forward(self, x, condition):
        """x (B, T, D), condition (B|1, D) -> (B, T, D)."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (
            self.adaln_modulation(condition).unsqueeze(1).chunk(6, dim=-1))  # 6 x (B|1, 1, D)
        x = x + gate_a * self.attention(modulate(self.attention_norm(x), shift_a, scale_a))
        return x + gate_m * self.mlp(modulate(self.mlp_norm(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    """LN -> adaLN shift/scale from c -> Linear(D, out_dim); everything zero-initialised, so outputs start at 0."""

    def __init__(self, dim, out_dim, bias=True):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim, bias=bias)
        zero_linear(self.adaln_modulation[1])
        zero_linear(self.linear)

    def forward(self, x, condition):
        shift, scale = self.adaln_modulation(condition).unsqueeze(1).chunk(2, dim=-1)  # 2 x (B|1, 1, D)
        return self.linear(modulate(self.norm(x), shift, scale))


# ----------------------------------------------------------------------------- trunk

class PatchTransformer(nn.Module):
    """Patch embedding + sin-cos positions + adaLN-Zero blocks + final layer: (B,C,S,S), c -> (B, T, out_dim)."""

    def __init__(self, input_size, patch_size, in_channels, dim, depth, heads, mlp_ratio, out_dim, out_bias=True):
        super().__init__()
        self.input_size, self.patch_size, self.in_channels = input_size, patch_size, in_channels
        self.patch_embed = PatchEmbed(input_size, patch_size, in_channels, dim)
        grid = self.patch_embed.grid_size
        # fixed, not trained; kept in the state dict like DiT's frozen pos_embed parameter
        self.register_buffer("pos_embed", sincos_2d_table(dim, grid).float().unsqueeze(0))  # (1, T, D)
        self.blocks = nn.ModuleList(AdaLNBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(dim, out_dim, bias=out_bias)

    def patch_outputs(self, x, condition):
        """x (B, C, S, S), condition (B|1, D) -> (B, T, out_dim)."""
        h = self.patch_embed(x) + self.pos_embed  # (B, T, D)
        for block in self.blocks:
            h = block(h, condition)
        return self.final_layer(h, condition)
