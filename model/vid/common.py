"""What both video models share: frame features from a batch, next-frame targets and the loss."""
import torch.nn as nn
import torch.nn.functional as F

from model.blocks import init_linear


def feature_projection(in_dim, out_dim):
    """The map between a frame encoder's feature space and the trunk's width, in both video models: Linear with
    bias, xavier-normal weights and zero bias (as published), or the identity when the sizes agree."""
    if in_dim == out_dim:
        return nn.Identity()
    projection = nn.Linear(in_dim, out_dim, bias=True)
    init_linear(projection, "xavier")
    return projection


def frame_features(batch, encoder):
    """(B, C+1, F) features of a batch: pre-encoded latents, or frames run through the frozen encoder."""
    if "latents" in batch:
        return batch["latents"].float()
    if encoder is None:
        raise ValueError("this video model has no frame encoder attached; give it pre-encoded latents "
                         "(batch['latents']) or build it with an encoder")
    return encoder.encode(batch["video"]).float()


def inputs_and_targets(features):
    """Features of C+1 frames -> inputs (frames 0..C-1) and next-frame targets (frames 1..C)."""
    return features[:, :-1], features[:, 1:]


def next_frame_loss(predicted, targets):
    """SmoothL1 (beta 1) between predicted and true next-frame features (docs/method.md §8.2)."""
    return F.smooth_l1_loss(predicted.float(), targets.float(), beta=1.0)
