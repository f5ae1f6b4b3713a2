"""Transformer++ trunk (docs/method.md §6): llama-style pre-norm blocks with standard causal attention."""
import torch
import torch.nn as nn

from model.attention import append_attention, causal_attention
from model.blocks import Block, RMSNorm, RotaryEmbedding, ffn_hidden_dim


class CausalTransformer(nn.Module):
    """Blocks + final RMSNorm over token embeddings (B, T, D) -> hidden states (B, T, D)."""

    def __init__(self, cfg):
        super().__init__()
        D = cfg.embedding_dim
        self.layers = nn.ModuleList(
            Block(D, cfg.multiheaded_attention_heads, ffn_hidden_dim(D, cfg.ffn_dim_multiplier),
                  init_method=cfg.weight_initialization_method, init_gain=cfg.weight_initialization_gain)
            for _ in range(cfg.num_transformer_blocks))
        self.norm = RMSNorm(D)
        self.rope = RotaryEmbedding(D // cfg.multiheaded_attention_heads, cfg.context_length + 1)

    def forward(self, x, cache=None):
        """x (B, T, D) -> (B, T, D). With a cache (a list of per-layer (keys, values), empty at first),
        x continues the cached tokens and the cache is extended in place (generation)."""
        if cache is None:
            positions = torch.arange(x.shape[1], device=x.device)
            for layer in self.layers:
                x = layer(x, self.rope, positions, causal_attention)
            return self.norm(x)
        start = cache[0][0].shape[-2] if cache else 0
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        for i, layer in enumerate(self.layers):
            def attend(q, k, v, i=i):
                if len(cache) == i:  # the first call fills the cache
                    cache.append((k, v))
                    return causal_attention(q, k, v)
                out, keys, values = append_attention(q, k, v, *cache[i])
                cache[i] = (keys, values)
                return out
            x = layer(x, self.rope, positions, attend)
        return self.norm(x)
