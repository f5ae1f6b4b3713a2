"""Image denoising EBT (docs/method.md §7.3): thinking starts from the noisy image and walks down the energy.

    x_t = q_sample(x0, t)                      t = diffusion_steps - 1: a fraction L (the noise level) of
                                               the way through a standard 1000-step DDPM schedule
    x_{i+1} = x_i - alpha * dE(x_i | c)/dx_i   E = mean of per-patch energies of a bidirectional EBT,
                                               c = one learned adaLN condition vector
    loss = mean over steps of SmoothL1(x_i, x0)

The loop, the step size and the System 2 options are the shared ones (model/thinking.py); System 2 at
test time (more steps, a different alpha, Langevin noise, best-of-N by energy) works here too, which the
published image model lacks (it had no multi-sample selection).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import ImageEBTConfig
from model.flops import image_ebt_flops
from model.img.bidirectional_ebt import BidirectionalEBT
from model.img.denoising import ImageDenoiser, PatchDenoiser, pixel_mse
from model.thinking import EnergyMinimizer, ThinkingProblem


class EBT_IMG_Denoise(PatchDenoiser, EnergyMinimizer):
    """Bidirectional EBT energy network + alpha + a learned constant condition (docs/method.md §7.3)."""

    def __init__(self, hparams):
        cfg = hparams if isinstance(hparams, ImageEBTConfig) else ImageEBTConfig.from_hparams(hparams)
        super().__init__(cfg)
        D = cfg.embedding_dim
        self.transformer = BidirectionalEBT(cfg.image_dims, cfg.patch_size, cfg.image_channels, D,
                                            cfg.num_transformer_blocks, cfg.multiheaded_attention_heads, cfg.mlp_ratio)
        self.learned_adaln_condition = nn.Embedding(1, D)  # N(0, 1), shared by every image
        self.noising = ImageDenoiser(cfg)

    @property
    def network(self):
        return self.transformer

    def estimate_flops(self):
        """Training FLOPs per image patch (model/flops.py): second-order thinking steps over the energy network."""
        return image_ebt_flops(self.transformer, self.cfg)

    def energy(self, x, landscape=0):
        """Energies (B,) of images (B, C, S, S); the bidirectional EBT has no landscape index."""
        return self.transformer(x, self.learned_adaln_condition.weight)

    def forward(self, noised, learning=False, final_energy=False):
        """Denoise by thinking from the noisy image itself. (B, C, S, S) -> ThinkingResult of images."""
        return self.minimize(self.energy, noised.detach().clone(), (noised.shape[0], 1, 1, 1), learning, final_energy)

    def advanced_inference(self, noised, icfg):
        """System 2 thinking at test time; best-of-N keeps, per image, the sample chosen by its energy."""
        B = noised.shape[0]
        return self.minimize_best_of(lambda G: self.energy, lambda rows: noised.repeat_interleave(rows // B, 0),
                                     B, icfg)

    def denoise(self, noised, t=None, inference=None):
        """Denoised images and the number of forward passes (thinking steps, of each of the best-of-N samples; each
        adds an input-gradient backward). t is unused: the EBT was trained at one noise level and just thinks."""
        result = self.advanced_inference(noised, inference) if inference is not None else self(noised, final_energy=True)
        samples = inference.infer_generated_samples if inference is not None else 1
        return result, len(result.states) * samples

    def sample(self, noised, t=None):
        """The denoised images of the grids logged while training: System 1 thinking from the noisy ones."""
        return self.denoise(noised, t)[0].states[-1]

    def thinking_problem(self, batch):
        """ThinkingProblem of clean images (B, C, S, S): thinking starts from their noised copies at the trained
        noise level; the target is the clean image, the loss per image the SmoothL1 to it."""
        x0 = batch["image"]
        noised = self.noising.noise(x0, self.noising.training_timesteps(x0.shape[0], x0.device, False))

        def loss(state):
            return F.smooth_l1_loss(state, x0, reduction="none").flatten(1).mean(1)

        return ThinkingProblem(lambda rows: self.energy, noised.detach().clone(), x0, loss,
                               step_size_shape=(x0.shape[0], 1, 1, 1))

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        """Loss and logs for clean images batch["image"] (B, C, S, S) in [-1, 1] (docs/method.md §7.3)."""
        x0 = batch["image"]
        training = phase == "train"
        t = self.noising.training_timesteps(x0.shape[0], x0.device,
                                            training and self.cfg.randomize_denoise_images_noise_level)
        noised = self.noising.noise(x0, t)
        result, final_energy = self.think_for_loss(noised, training, final_energy, inference)
        step_losses = torch.stack([F.smooth_l1_loss(x, x0) for x in result.states])
        final = result.states[-1].detach()
        pixel_errors = pixel_mse(final, x0)
        return {
            **self.thinking_report(result, step_losses, final_energy),
            "initial_loss": F.smooth_l1_loss(noised, x0).detach(),  # of the noisy input itself
            "l1_loss": F.l1_loss(final, x0),
            "pixel_mse": pixel_errors,  # (B,), for PSNR
            "mse_raw_loss": pixel_errors.mean(),
            "count": torch.tensor(x0.shape[0], device=x0.device),
        }
