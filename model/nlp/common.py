"""Pieces both language models share: next-token targets and the token-level loss."""
import torch.nn.functional as F

from model.attention import upcast


def inputs_and_targets(batch):
    """Rows of C+1 token ids -> inputs (B, C) and next-token targets (B, C)."""
    ids = batch["input_ids"]
    return ids[:, :-1], ids[:, 1:]


def next_token_loss(logits, targets, pad_token_id, label_smoothing=0.0):
    """Mean cross-entropy over non-pad targets. logits (B, n, V), targets (B, n)."""
    return F.cross_entropy(upcast(logits).flatten(0, 1), targets.flatten(), ignore_index=pad_token_id,
                           label_smoothing=label_smoothing)


def count_target_tokens(targets, pad_token_id):
    return (targets != pad_token_id).sum()
