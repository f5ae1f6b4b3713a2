"""DiT, the diffusion baseline for image denoising (docs/method.md §7.4): predicts noise (and a variance) per pixel.

    c = TimestepEmbedder(t) [+ Linear(y)]          (B, D)
    out = unpatchify(PatchTransformer(x_t, c))     (B, 2C, S, S) with learn_sigma: [eps, v], v in [-1, 1]
                                                   interpolates log beta_t and log posterior variance

The output layer is zero-initialised, so the network predicts eps = 0, v = 0 at init. Sizes: `image_model_size`
('DiT-S/2' ... 'DiT-XL/16', the DiT paper's table). DiT is trained and sampled first-order only.
"""
import torch.nn as nn

from model.img.backbone import PatchTransformer, TimestepEmbedder, unpatchify


class DiT(PatchTransformer):
    """x_t (B, C, S, S), t (B,) [, y (B, condition_dim)] -> (B, 2C or C, S, S)."""

    def __init__(self, input_size, patch_size, in_channels, dim, depth, heads, mlp_ratio, learn_sigma=True,
                 condition_dim=None):
        out_channels = 2 * in_channels if learn_sigma else in_channels
        super().__init__(input_size, patch_size, in_channels, dim, depth, heads, mlp_ratio,
                         out_dim=patch_size * patch_size * out_channels)
        self.out_channels = out_channels
        self.timestep_embedder = TimestepEmbedder(dim)
        # optional class/text condition added to the timestep embedding; PyTorch's default init, like the
        # published text_embeddings_projector (docs/method.md §7.6)
        self.condition_projector = nn.Linear(condition_dim, dim) if condition_dim else None

    def forward(self, x, t, y=None):
        c = self.timestep_embedder(t)  # (B, D)
        if self.condition_projector is not None:
            if y is None:
                raise ValueError("this DiT was built with condition_dim; pass the condition y (B, condition_dim)")
            c = c + self.condition_projector(y)
        elif y is not None:
            raise ValueError("this DiT is unconditional (condition_dim=None) but a condition y was passed")
        return unpatchify(self.patch_outputs(x, c), self.patch_size, self.out_channels)
