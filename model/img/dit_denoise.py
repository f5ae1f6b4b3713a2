"""Diffusion Transformer baseline for image denoising (docs/method.md §7.4, §7.5).

Training: t ~ U{0..diffusion_steps-1} (only the low-noise part of the schedule up to the trained level),
loss = eps-MSE + the variational-bound term of the learned variance. Denoising an image noised to
timestep t runs DDIM (eta 0) from t down to 0: t + 1 forward passes, times (r + 1) with the paper's
recursion (`infer_recurse_diffusion_n_times = r`).
"""

from model.config import ImageConfig
from model.flops import dit_flops
from model.img.diffusion import diffusion_loss_report
from model.img.dit import DiT
from model.img.denoising import ImageDenoiser, PatchDenoiser
from model.protocol import Model
from model.thinking import ThinkingResult


class DiT_IMG_Denoise(PatchDenoiser, Model):
    """DiT (eps + learned sigma) and its Gaussian diffusion."""

    def __init__(self, hparams):
        super().__init__()
        cfg = hparams if isinstance(hparams, ImageConfig) else ImageConfig.from_hparams(hparams)
        self.cfg = cfg
        self.dit = DiT(cfg.image_dims, cfg.patch_size, cfg.image_channels, cfg.embedding_dim,
                       cfg.num_transformer_blocks, cfg.multiheaded_attention_heads, cfg.mlp_ratio, learn_sigma=True)
        self.noising = ImageDenoiser(cfg)

    @property
    def network(self):
        return self.dit

    def estimate_flops(self):
        """Training FLOPs per image patch (model/flops.py): one forward and backward of the DiT."""
        return dit_flops(self.dit)

    def denoise(self, noised, t, inference=None):
        """DDIM from timestep t (or --infer_increase_steps) to 0, recursed r more times.
        -> (ThinkingResult with the one final state, number of forward passes)."""
        start = self.cfg.infer_increase_steps or t
        r = self.cfg.infer_recurse_diffusion_n_times
        x = self.diffusion.ddim_recurse(self.dit, noised, start, r, eta=0.0)
        return ThinkingResult(states=[x]), (start + 1) * (r + 1)

    def sample(self, noised, t):
        """Image logging during training: DDIM with --use_deterministic_reverse, else ancestral sampling."""
        if self.cfg.use_deterministic_reverse:
            return self.diffusion.ddim_sample_loop(self.dit, noise=noised, timestep_start=t, eta=0.0)
        return self.diffusion.p_sample_loop(self.dit, noise=noised, timestep_start=t)

    def forward_loss_wrapper(self, batch, phase="train", **unused):
        """Diffusion training loss at random low-noise timesteps (logged in every phase, docs/method.md §7.4)."""
        x0 = batch["image"]
        t = self.noising.training_timesteps(x0.shape[0], x0.device, randomize=True)
        return diffusion_loss_report(self.diffusion.training_losses(self.dit, x0, t), x0.shape[0])

