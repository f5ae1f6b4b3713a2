"""Image preprocessing of the paper's image runs (docs/method.md §9.3): ADM/DiT centre crop, pixels to [-1, 1].

Written with PIL, numpy and torch only (torchvision is not part of the install, see environment.md). Every step is
deterministic: the same image and size always give the same tensor.
"""

import numpy as np
import torch
from PIL import Image


def to_rgb(image):
    """`image` as an 8-bit RGB PIL image.

    Grayscale ('L', '1') is replicated to three channels, palettes are expanded, and alpha ('RGBA', 'LA', 'PA') is
    dropped without compositing, as the published code's `convert("RGB")` does. 16/32-bit grayscale ('I;16', 'I')
    is scaled from the 16-bit range to 8 bits instead of being clipped at 255.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):  # 16-bit PNGs open as 'I;16' or 'I'; PIL's convert would clip them to white
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))  # (H, W) uint8 -> 'L'
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # the direct P -> RGB path warns about transparency given as bytes
    return image.convert("RGB")


def center_crop(image, size):
    """The ADM/DiT centre crop of a PIL image to a (size, size) PIL image.

    While the short side is at least 2 * size, halve both sides (integer division) with BOX resampling, an
    anti-aliased downscale; then BICUBIC-resize so the short side equals `size`; then cut the central
    size x size square (the extra pixel of an odd margin goes to the right/bottom).
    """
    while min(image.size) >= 2 * size:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), resample=Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(image):
    """RGB PIL image (W, H) -> float32 tensor (3, H, W) in [-1, 1]: ToTensor then Normalize(mean 0.5, std 0.5)."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W) uint8
    return (pixels.float() / 255.0 - 0.5) / 0.5


def image_transform(image, size):
    """Any PIL image -> (3, size, size) float32 tensor in [-1, 1]: to_rgb, center_crop, to_tensor."""
    return to_tensor(center_crop(to_rgb(image), size))


def denormalize(images):
    """Inverse of the [-1, 1] normalisation: [-1, 1] -> [0, 1], any shape; values are not clamped."""
    return images * 0.5 + 0.5
