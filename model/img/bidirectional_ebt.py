"""Bidirectional EBT energy network for images (docs/method.md §7.2): a DiT without time embedder, scalar head.

    E(x | c) = mean over patches of e_t,   e = FinalLayer(adaLN-Zero blocks(patches(x) + positions), c)

Every patch attends to every other patch of the same image; images never interact, so the energy of one
image does not depend on the rest of the batch. The condition c (B|1, D) drives all adaLN modulation; the
denoiser passes one learned vector shared by the batch, text-to-image a projected caption embedding.

The energy head Linear(D, 1, bias=False) starts at exactly zero, so the initial energy is 0 and the first
thinking step initially leaves the image unchanged: learning starts through the second-order terms.
Thinking differentiates dE/dx once more in training (create_graph=True), so the blocks use the explicit
softmax attention (see model/attention.py).
"""
from model.img.backbone import PatchTransformer


class BidirectionalEBT(PatchTransformer):
    """Energy of whole images: (B, C, S, S), condition (B|1, D) -> (B,)."""

    def __init__(self, input_size, patch_size, in_channels, dim, depth, heads, mlp_ratio):
        super().__init__(input_size, patch_size, in_channels, dim, depth, heads, mlp_ratio,
                         out_dim=1, out_bias=False)

    def patch_energies(self, x, condition):
        """Per-patch scalar energies (B, T)."""
        return self.patch_outputs(x, condition).squeeze(-1)

    def forward(self, x, condition):
        """Per-image energy (B,) = mean of the patch energies (also for B = 1)."""
        return self.patch_energies(x, condition).mean(dim=1)
