"""What both image denoisers (EBT and DiT) share: the noising process, noise levels and the pixel metric."""
import torch
import torch.nn as nn

from model.flops import num_patches
from model.img.diffusion import diffusion_for_noise_level, test_timestep


def pixel_mse(denoised, clean):
    """Per-image MSE on the [0, 255] scale of images in [-1, 1], prediction clamped (docs/method.md §7.5). -> (B,)"""
    to_pixels = lambda x: ((x.float().clamp(-1, 1) + 1) * 127.5)
    return (to_pixels(denoised) - to_pixels(clean)).pow(2).flatten(1).mean(1)


class PatchDenoiser:
    """Mixin of both denoising models: their noising process (`self.noising`, an ImageDenoiser) and the patches of
    their network (`self.network`), one token each."""

    @property
    def diffusion(self):
        return self.noising.diffusion

    @property
    def tokens_per_sample(self):
        return num_patches(self.network)


class ImageDenoiser(nn.Module):
    """What both image denoisers share: the noising process and the noise-level bookkeeping."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        # the schedule is the one of the level trained at; testing at another level only moves t (docs/method.md §7.1)
        self.diffusion = diffusion_for_noise_level(cfg.diffusion_steps, cfg.trained_noise_level)

    def training_timesteps(self, batch_size, device, randomize):
        """t = diffusion_steps - 1 for every image, or t ~ U{0..diffusion_steps-1}."""
        if randomize:
            return torch.randint(0, self.cfg.diffusion_steps, (batch_size,), device=device)
        return torch.full((batch_size,), self.cfg.diffusion_steps - 1, dtype=torch.long, device=device)

    def timestep_for(self, noise_level):
        """The timestep of a noise level in this model's schedule (0.1 -> 99 for a model trained at 0.1)."""
        t = test_timestep(noise_level, self.diffusion.num_timesteps)
        if not 0 <= t < self.diffusion.num_timesteps:
            raise ValueError(f"noise level {noise_level} is outside this model's schedule (trained at "
                             f"{self.cfg.trained_noise_level}: levels up to 1.0 reach t = "
                             f"{self.diffusion.num_timesteps - 1})")
        return t

    def noise(self, x0, t):
        """x_t for clean images x0 (B, C, S, S) at timestep t (int or (B,))."""
        if isinstance(t, int):
            t = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
        return self.diffusion.q_sample(x0, t)
