"""Batching of variable-length token rows."""

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence


class NLPCollator:
    """Stacks {"input_ids": 1-D tensor} items into a right-padded (B, L) LongTensor, rows cut to `max_length`."""

    def __init__(self, pad_token_id, max_length, pad_to_max_length=False):
        self.pad_token_id, self.max_length, self.pad_to_max_length = pad_token_id, max_length, pad_to_max_length

    def __call__(self, items):
        rows = [torch.as_tensor(item["input_ids"], dtype=torch.long)[:self.max_length] for item in items]
        batch = pad_sequence(rows, batch_first=True, padding_value=self.pad_token_id)  # (B, longest row)
        if self.pad_to_max_length:  # fixed (B, max_length) rows, e.g. for the replay buffer (docs/method.md §4.5)
            batch = F.pad(batch, (0, self.max_length - batch.shape[1]), value=self.pad_token_id)
        return {"input_ids": batch}
