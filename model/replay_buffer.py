"""Replay buffer of System 2 training (docs/method.md §4.5): some rows continue thinking from where they stopped.

A preallocated ring of token rows and their final predicted logits, kept as module buffers: it lives on
the model's device and is saved in, and restored from, checkpoints. Note the size at paper scale:
192 records x 256 positions x 50,277 logits in fp32 is 9.9 GB (the published list held the same).
"""
import torch
import torch.nn as nn


class CausalReplayBuffer(nn.Module):
    """Ring buffer of `capacity` records (row of C+1 tokens, (C, V) raw logits); the oldest is replaced."""

    def __init__(self, capacity, row_length, vocab_size, sample_size):
        super().__init__()
        self.capacity, self.sample_size = capacity, sample_size
        self.register_buffer("tokens", torch.zeros(capacity, row_length, dtype=torch.long))
        self.register_buffer("logits", torch.zeros(capacity, row_length - 1, vocab_size))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # records ever added

    def __len__(self):
        return int(min(self.count, self.capacity))

    def sample(self, fresh_rows):
        """Append up to `sample_size` stored rows after the fresh ones (fresh rows first, docs/method.md §4.5).

        fresh_rows (B, C+1) -> (rows (B+R, C+1), stored logits (R, C, V) or None).
        """
        if len(self) == 0 or self.sample_size == 0:
            return fresh_rows, None
        if fresh_rows.shape[1] != self.tokens.shape[1]:
            raise ValueError(f"the replay buffer needs rows of exactly {self.tokens.shape[1]} tokens "
                             f"(context_length + 1), got {fresh_rows.shape[1]}")
        chosen = torch.randperm(len(self))[:self.sample_size].to(self.tokens.device)  # without replacement
        return torch.cat([fresh_rows, self.tokens[chosen]]), self.logits[chosen]

    @torch.no_grad()
    def add(self, rows, logits):
        """Store fresh rows (B, C+1) with their final raw logits (B, C, V), overwriting the oldest."""
        slots = (self.count + torch.arange(rows.shape[0], device=rows.device)) % self.capacity
        self.tokens[slots] = rows
        self.logits[slots] = logits.detach().to(self.logits.dtype)
        self.count += rows.shape[0]
