"""Pieces both language models share: next-token targets and the token-level loss."""
import torch.nn.functional as F

from model.attention import upcast


def inputs_and_targets(batch, pad_token_id):
    """Rows of C+1 token ids -> inputs (B, C) and next-token targets (B, C).

    A `loss_mask` (B, C+1) in the batch (finetuning: answer tokens only) turns unmasked targets into
    padding, which the loss ignores.
    """
    ids = batch["input_ids"]
    inputs, targets = ids[:, :-1], ids[:, 1:]
    if "loss_mask" in batch:
        targets = targets.masked_fill(~batch["loss_mask"][:, 1:].bool(), pad_token_id)
    return inputs, targets


def next_token_loss(logits, targets, pad_token_id, label_smoothing=0.0):
    """Mean cross-entropy over non-pad targets. logits (B, n, V), targets (B, n)."""
    return F.cross_entropy(upcast(logits).flatten(0, 1), targets.flatten(), ignore_index=pad_token_id,
                           label_smoothing=label_smoothing)


def count_target_tokens(targets, pad_token_id):
    return (targets != pad_token_id).sum()
