"""Denoising evaluation for the image EBT and the DiT (docs/method.md §7.5), and picture grids.

`denoise_batch` noises clean images to a test noise level (which may be higher than the one trained at:
the schedule stays the trained one, only t moves) and denoises them: the EBT thinks from the noisy
image, the DiT runs DDIM from t (t + 1 forward passes, times r + 1 when recursed). It reports the
SmoothL1 to the clean image after every EBT thinking step, the energies, and per-image pixel MSE on the
[0, 255] scale, from which `psnr` computes both the published PSNR (of the mean MSE) and the mean of
per-image PSNRs.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.img.denoising import pixel_mse


@torch.no_grad()
def denoise_batch(model, clean, noise_level, inference=None):
    """clean (B, C, S, S) in [-1, 1] -> dict(noised, denoised, step_losses (T,), step_energies (T,),
    final_energy (EBT), pixel_mse (B,) of the denoised and noisy_pixel_mse (B,) of the noisy images,
    forward_passes)."""
    t = model.noising.timestep_for(noise_level)
    noised = model.noising.noise(clean, t)
    result, passes = model.denoise(noised, t, inference)
    denoised = result.states[-1].detach()
    out = {
        "noised": noised, "denoised": denoised, "forward_passes": passes, "timestep": t,
        "step_losses": torch.stack([F.smooth_l1_loss(x.detach(), clean) for x in result.states]),
        "pixel_mse": pixel_mse(denoised, clean),
        "noisy_pixel_mse": pixel_mse(noised, clean),
        "count": torch.tensor(clean.shape[0], device=clean.device),
    }
    if result.energies:
        out["step_energies"] = torch.stack([e.detach().mean() for e in result.energies])
        out["final_energy"] = result.final_energy.detach().mean()
    return out


def psnr(pixel_mse):
    """PSNR in dB of an MSE on the [0, 255] scale: of one number (a float), or of each entry of a tensor."""
    if torch.is_tensor(pixel_mse) and pixel_mse.dim() > 0:
        return 10 * torch.log10(255.0 ** 2 / pixel_mse.clamp(min=1e-10))
    return 10 * math.log10(255 ** 2 / max(float(pixel_mse), 1e-10))


def to_uint8(images):
    """(B, C, S, S) in [-1, 1] -> uint8 array (B, S, S, C)."""
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def save_image_grid(path, rows, max_images=8):
    """One PNG with a row per tensor in `rows` (e.g. noisy, denoised, clean), max_images columns."""
    arrays = [to_uint8(r[:max_images]) for r in rows]
    B, S, _, C = arrays[0].shape
    grid = np.full((len(arrays) * (S + 2), B * (S + 2), C), 255, dtype=np.uint8)
    for i, array in enumerate(arrays):
        for j, image in enumerate(array):
            grid[i * (S + 2):i * (S + 2) + S, j * (S + 2):j * (S + 2) + S] = image
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid.squeeze(-1) if C == 1 else grid).save(path)
    return path
