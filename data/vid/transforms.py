"""Frame preprocessing of the video runs (docs/method.md §9.4): resize to (H, W), scale to [0, 1], normalise; inverse.

Normalisations (--vae_normalization and --custom_image_normalization pick them; ImageNet is the default):
  imagenet  (x - ImageNet mean) / ImageNet std
  vae       (x - 0.5) / 0.5, i.e. [-1, 1], the SD-VAE's input range
  custom    ImageNet's, then a second per-dataset (x - mean) / std computed on ImageNet-normalised frames of that
            dataset (ucf101, k400, something, imagenet = identity). There are no statistics for other datasets,
            so they are refused; `aggregate` normalises each of its parts with its own statistics.

Resizing is PIL's bilinear filter, which is antialiased when downscaling: this is what the published
torchvision Resize((H, W)) did on the PIL frames it received. The aspect ratio is not kept (no crop), as published.
Written with PIL, numpy and torch only (no torchvision, see environment.md).
"""

import numpy as np
import torch
from PIL import Image

NORMALIZATIONS = ("imagenet", "vae", "custom")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VAE_MEAN, VAE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# --custom_image_normalization: (mean, std) applied after ImageNet's (the published lookup stores (std, mean))
CUSTOM_STATISTICS = {
    "ucf101": ((-0.4069, -0.3610, -0.2569), (1.0473, 1.0437, 1.0280)),
    "k400": ((-0.2430, -0.2493, -0.1396), (1.0037, 0.9987, 0.9741)),
    "something": ((-0.0676, -0.1269, -0.0192), (0.9083, 0.9389, 0.9375)),
    "imagenet": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
STATISTICS_ALIASES = {"kinetics400": "k400", "smth": "something", "ssv2": "something", "imagenet1k": "imagenet"}


def normalization_from_flags(vae_normalization=False, custom_image_normalization=False):
    """The normalisation the flags select; --custom_image_normalization wins over --vae_normalization, as published."""
    if custom_image_normalization:
        return "custom"
    return "vae" if vae_normalization else "imagenet"


def normalization_steps(normalization, dataset_name=None):
    """[(mean, std), ...] applied in order by `normalization` for frames of `dataset_name`."""
    if normalization == "imagenet":
        return [(IMAGENET_MEAN, IMAGENET_STD)]
    if normalization == "vae":
        return [(VAE_MEAN, VAE_STD)]
    if normalization != "custom":
        raise ValueError(f"normalization {normalization!r}: choose one of {', '.join(NORMALIZATIONS)}")
    key = STATISTICS_ALIASES.get(dataset_name, dataset_name)
    if key not in CUSTOM_STATISTICS:
        if dataset_name == "aggregate":
            raise ValueError("--custom_image_normalization with aggregate: its k400 and something parts are "
                             "normalised with their own statistics; name the part ('k400' or 'something')")
        raise ValueError(f"--custom_image_normalization has dataset statistics only for "
                         f"{', '.join(CUSTOM_STATISTICS)} (and aggregate), not {dataset_name!r}; use the "
                         "default ImageNet normalisation or --vae_normalization")
    return [(IMAGENET_MEAN, IMAGENET_STD), CUSTOM_STATISTICS[key]]


def channel_view(values, like):
    """A 3-vector as a tensor broadcasting over the channel dim (-3) of `like` (..., 3, H, W)."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(3, 1, 1)


def normalize_frames(frames, normalization="imagenet", dataset_name=None):
    """Frames (..., 3, H, W) in [0, 1] -> normalised frames, same shape."""
    for mean, std in normalization_steps(normalization, dataset_name):
        frames = (frames - channel_view(mean, frames)) / channel_view(std, frames)
    return frames


def denormalize_frames(frames, normalization="imagenet", dataset_name=None):
    """Inverse of normalize_frames: normalised (..., 3, H, W) -> [0, 1] (not clamped), e.g. to save pictures."""
    for mean, std in reversed(normalization_steps(normalization, dataset_name)):
        frames = frames * channel_view(std, frames) + channel_view(mean, frames)
    return frames


def frame_size(image_size):
    """(H, W) from --image_dims given as S, [S] or [H, W]."""
    sides = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or not all(isinstance(s, int) and s >= 1 for s in sides):
        raise ValueError(f"--image_dims {image_size}: give the frame size as H W (or one size for square frames), "
                         "e.g. --image_dims 224 224")
    return tuple(sides)


def resize_frames(frames, size):
    """(n, H0, W0, 3) uint8 -> (n, H, W, 3) uint8, each frame resized with PIL bilinear; unchanged if same size."""
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), resample=Image.BILINEAR))
                     for frame in frames])


def frames_to_tensor(frames, size, normalization="imagenet", dataset_name=None):
    """(n, H0, W0, 3) uint8 RGB frames -> (n, 3, H, W) float32: resize, scale to [0, 1] (ToTensor), normalise."""
    pixels = torch.from_numpy(np.ascontiguousarray(resize_frames(frames, size))).permute(0, 3, 1, 2)  # (n, 3, H, W)
    return normalize_frames(pixels.float() / 255.0, normalization, dataset_name)
