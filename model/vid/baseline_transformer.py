"""Transformer++ for video: next-frame features regressed directly (docs/method.md §8.3).

    features (B, n, F) -> down: Linear(F, D) -> causal transformer -> Linear(D, D) -> up: Linear(D, F)

With --weight_tie_vae_proj the up-projection uses the down-projection's weight, transposed. (The published
code copied it once at init, so the two drifted apart; here they stay tied.)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.blocks import init_linear
from model.config import VideoConfig
from model.flops import transformer_flops, weight_count
from model.frozen import FollowsDevice
from model.protocol import Model
from model.transformer import CausalTransformer
from model.vid.common import feature_projection, frame_features, inputs_and_targets, next_frame_loss


class Baseline_Transformer_VID(FollowsDevice, Model):
    """Feature projections around the Transformer++ trunk; a frozen frame encoder kept outside the weights."""

    def __init__(self, hparams, encoder=None):
        super().__init__()
        cfg = hparams if isinstance(hparams, VideoConfig) else VideoConfig.from_hparams(hparams)
        self.cfg = cfg
        D, Fd = cfg.embedding_dim, cfg.feature_dim
        self.project = Fd != D
        if self.project:
            self.encoder_down_projection = feature_projection(Fd, D)
            if not cfg.weight_tie_vae_proj:
                self.encoder_up_projection = feature_projection(D, Fd)
        self.transformer = CausalTransformer(cfg)
        self.output = nn.Linear(D, D, bias=False)
        init_linear(self.output, cfg.weight_initialization_method, cfg.weight_initialization_gain)
        self.encoders = encoder  # a plain object: frozen, not a submodule, not in the state dict; follows .to()

    def estimate_flops(self):
        """Training FLOPs per predicted frame (model/flops.py; a tied up-projection multiplies twice); the frozen
        encoder is not counted."""
        c = self.cfg
        tied = 0
        if self.project and c.weight_tie_vae_proj:
            tied = weight_count(self.encoder_down_projection, only=("weight",))
        return transformer_flops(weight_count(self) + tied, c.num_transformer_blocks, c.embedding_dim, c.context_length)

    def embed_observed(self, features):
        return self.encoder_down_projection(features) if self.project else features

    def up(self, hidden):
        if not self.project:
            return hidden
        if self.cfg.weight_tie_vae_proj:
            return F.linear(hidden, self.encoder_down_projection.weight.t())
        return self.encoder_up_projection(hidden)

    def head(self, hidden):
        """Trunk outputs (B, n, D) -> predicted next-frame features (B, n, F)."""
        return self.up(self.output(hidden))

    def forward(self, features):
        """features (B, n, F) -> predicted next-frame features (B, n, F)."""
        return self.head(self.transformer(self.embed_observed(features)))

    def forward_loss_wrapper(self, batch, phase="train", **unused):
        inputs, targets = inputs_and_targets(frame_features(batch, self.encoders))
        predicted = self(inputs)
        loss = next_frame_loss(predicted, targets)
        return {
            "loss": loss,
            "final_step_loss": loss.detach(),
            "mse_loss": (predicted.detach() - targets).pow(2).mean(),
            "step_losses": loss.detach().unsqueeze(0),
            "count": torch.tensor(targets.shape[0] * targets.shape[1], device=targets.device),
        }
