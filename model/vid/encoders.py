"""Frozen frame encoders of the video models (docs/method.md §8.1): each frame of a clip becomes one feature vector.

    --backbone_type   frames in                      feature per frame (F)                          decode
    vae               [-1, 1]                        SD-VAE latent_dist.mean (x 0.18215 with        VAE decoder
                                                     --sdxl_vae_standardization), flattened:
                                                     4 * (H/8) * (W/8)  (3136 for 224 x 224)
    dinov2            ImageNet mean/std normalised   DINOv2 final-layer-normed CLS token (the       not possible
                                                     transformers `pooler_output`): hidden size
                                                     384 / 768 / 1024 / 1536 (small ... giant)
    pixels            [-1, 1] (any range works)      the frame itself, average-pooled by f first:   reshape, then
                                                     3 * (H/f) * (W/f)  (12288 for 64 x 64, f 1)    repeat f x f

`encode` maps (B, C, 3, H, W) -> (B, C, F) under no_grad; `decode` maps (B, C, F) -> (B, C, 3, H, W).
The published code asserted `embedding_dim == 0` for DINO and then took the DINO width as the model width, which
can never pass (docs/method.md §12.10). Here the feature size is only a property of the encoder: a model of any width
reads it through `feature_projection` (Linear(F, D) when they differ, docs/method.md §8.1).

`vae` and `dinov2` load from a hub name or a local directory written with `save_pretrained` (the way to run
offline). Like the text-to-image encoders (model/img/encoders.py), they are never trained: eval mode,
requires_grad False, no_grad. A `FrameEncoder` is a plain object, not an nn.Module: a model that keeps it as
`self.encoders` and mixes in `model.img.encoders.FollowsDevice` moves it with `.to()` while `parameters()` and
`state_dict()` never see it. `name` identifies backbone, weights and options; latent stores (data/vid_latents.py)
record it and refuse to mix features of different encoders.
"""
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from model.frozen import VAE_SCALE, freeze, load_pretrained, load_vae, pretrained_name, vae_downsampling

DEFAULT_VIDEO_VAE = "stabilityai/sd-vae-ft-mse"  # published video VAE (docs/method.md §8.1; -ema only with use_ema)
BACKBONE_TYPES = ("vae", "dinov2", "pixels")

# --vit_backbone_size -> hub name (the published torch.hub dinov2_vit{s,b,l,g}14, here from transformers)
DINOV2_MODELS = {
    "small": "facebook/dinov2-small",  # width 384
    "base": "facebook/dinov2-base",  # 768
    "large": "facebook/dinov2-large",  # 1024
    "giant": "facebook/dinov2-giant",  # 1536
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _size_pair(image_size):
    """An int S or an (H, W) pair -> (H, W)."""
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def weights_fingerprint(module):
    """8 hex digits from every tensor's name, shape and first/last values: different weights, different name.

    Samples instead of hashing all bytes so that a billion-parameter DINOv2 fingerprints in milliseconds.
    """
    digest = hashlib.sha1()
    for key, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        sample = torch.cat([flat[:16], flat[-16:]]).float().cpu()
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:8]


def feature_projection(feature_dim, embedding_dim):
    """Encoder space -> model width: Linear(F, D), bias, xavier weights when they differ (docs/method.md §8.1)."""
    if feature_dim == embedding_dim:
        return nn.Identity()
    projection = nn.Linear(feature_dim, embedding_dim, bias=True)
    nn.init.xavier_uniform_(projection.weight)
    nn.init.zeros_(projection.bias)
    return projection


# ----------------------------------------------------------------------------- the common interface

class FrameEncoder:
    """Frozen per-frame encoder: encode (B, C, 3, H, W) -> (B, C, F), decode back where the backbone allows."""

    backbone_type = None
    # What the frames must look like, in the published flags' terms: "vae" = Normalize(0.5, 0.5), pixels in
    # [-1, 1] (--vae_normalization); "imagenet" = ImageNet mean/std (the published default transform).
    input_normalization = "vae"

    def __init__(self, image_size):
        self.image_size = _size_pair(image_size)  # (H, W)
        self.feature_dim = None
        self.name = None

    @property
    def modules(self):
        """The frozen nn.Modules (model.img.encoders.FollowsDevice moves these)."""
        return ()

    @property
    def device(self):
        for module in self.modules:
            return next(module.parameters()).device
        return torch.device("cpu")

    def to(self, *args, **kwargs):
        for module in self.modules:
            module.to(*args, **kwargs)
        return self

    def _check_frames(self, frames):
        if frames.dim() != 5 or frames.shape[2] != 3 or tuple(frames.shape[3:]) != self.image_size:
            raise ValueError(f"{self.backbone_type} encoder of {self.image_size[0]}x{self.image_size[1]} frames "
                             f"expects (B, C, 3, {self.image_size[0]}, {self.image_size[1]}); got "
                             f"{tuple(frames.shape)}")

    def _check_features(self, features):
        if features.dim() != 3 or features.shape[2] != self.feature_dim:
            raise ValueError(f"{self.backbone_type} features must be (B, C, {self.feature_dim}); got "
                             f"{tuple(features.shape)}")

    @torch.no_grad()
    def encode(self, frames):
        """(B, C, 3, H, W) frames -> (B, C, F) float32 features on the encoder's device."""
        self._check_frames(frames)
        B, C = frames.shape[:2]
        features = self._encode(frames.reshape(B * C, *frames.shape[2:]).to(self.device))  # (B*C, F)
        return features.float().reshape(B, C, self.feature_dim)

    @torch.no_grad()
    def decode(self, features):
        """(B, C, F) features -> (B, C, 3, H, W) frames in the input normalisation."""
        self._check_features(features)
        B, C = features.shape[:2]
        frames = self._decode(features.reshape(B * C, self.feature_dim).to(self.device))  # (B*C, 3, H, W)
        return frames.float().reshape(B, C, 3, *self.image_size)

    @property
    def can_decode(self):
        """Whether features map back to frames (VAE latents, pixels; not DINOv2 features)."""
        return type(self)._decode is not FrameEncoder._decode

    def _encode(self, frames):
        raise NotImplementedError

    def _decode(self, features):
        raise NotImplementedError(f"{self.backbone_type} features cannot be decoded back to frames")

    def __repr__(self):
        return f"{type(self).__name__}({self.name}, feature_dim={self.feature_dim})"


# ----------------------------------------------------------------------------- SD-VAE latents

class VAEFrameEncoder(FrameEncoder):
    """SD-VAE latent means of [-1, 1] frames, flattened: F = latent_channels * (H/8) * (W/8)."""

    backbone_type = "vae"

    def __init__(self, image_size, vae_path=DEFAULT_VIDEO_VAE, sdxl_vae_standardization=False):
        super().__init__(image_size)
        self.vae = load_vae(vae_path)  # frozen; OSError naming the tried path and the local-directory alternative
        self.scale = VAE_SCALE if sdxl_vae_standardization else 1.0
        down = vae_downsampling(self.vae)
        H, W = self.image_size
        if H % down or W % down:
            raise ValueError(f"--image_dims {H} {W}: the VAE downsamples by {down}, so both sides must be "
                             f"multiples of {down}")
        self.latent_shape = (self.vae.config.latent_channels, H // down, W // down)  # (4, H/8, W/8)
        self.feature_dim = self.latent_shape[0] * self.latent_shape[1] * self.latent_shape[2]
        self.name = (f"vae(path={vae_path}, weights={weights_fingerprint(self.vae)}, scale={self.scale:g}, "
                     f"frames={H}x{W})")

    @property
    def modules(self):
        return (self.vae,)

    def _encode(self, frames):
        latents = self.vae.encode(frames.to(self.vae.dtype)).latent_dist.mean * self.scale  # (B*C, 4, h, w)
        return latents.flatten(1)

    def _decode(self, features):
        latents = features.reshape(-1, *self.latent_shape).to(self.vae.dtype) / self.scale
        return self.vae.decode(latents).sample.clamp(-1, 1)


# ----------------------------------------------------------------------------- DINOv2 CLS features

def dinov2_model_name(size_or_name_or_dir):
    """A size key (small/base/large/giant) -> its hub name; a hub name (owner/name) or a local directory as is."""
    return pretrained_name(size_or_name_or_dir, DINOV2_MODELS, "vit_backbone_size")


def load_dinov2(size_or_name_or_dir="base"):
    """A frozen transformers Dinov2Model from a size key, a hub name or a local directory."""
    from transformers import Dinov2Model

    model, = load_pretrained("DINOv2 (vit_backbone_size)", size_or_name_or_dir,
                             dinov2_model_name(size_or_name_or_dir), Dinov2Model)
    return freeze(model)


class DINOv2FrameEncoder(FrameEncoder):
    """DINOv2 CLS feature of ImageNet-normalised frames: F = the model's hidden size, whatever the model width."""

    backbone_type = "dinov2"
    input_normalization = "imagenet"

    def __init__(self, image_size, vit_backbone_size="base"):
        super().__init__(image_size)
        self.dino = load_dinov2(vit_backbone_size)
        self.feature_dim = self.dino.config.hidden_size
        H, W = self.image_size
        self.name = (f"dinov2(model={dinov2_model_name(vit_backbone_size)}, weights={weights_fingerprint(self.dino)}, "
                     f"feature=pooler_output, frames={H}x{W})")

    @property
    def modules(self):
        return (self.dino,)

    def _encode(self, frames):
        # pooler_output = layernorm(last block)[:, 0]: the normalised CLS token, what the published torch.hub
        # model's forward returns (x_norm_clstoken; its head is Identity). Position embeddings are interpolated
        # for sizes other than the pretraining 518 / 224.
        return self.dino(pixel_values=frames.to(self.dino.dtype)).pooler_output  # (B*C, hidden)


# ----------------------------------------------------------------------------- raw pixels

class PixelFrameEncoder(FrameEncoder):
    """No network: each frame average-pooled by `pooling` and flattened, F = 3 * (H/f) * (W/f).

    The offline default for small clips such as Moving MNIST at 64 x 64 (f = 1: F = 12288; f = 2: 3072).
    decode(encode(x)) == x exactly for f = 1; for f > 1 each pooled pixel is repeated over its f x f block.
    """

    backbone_type = "pixels"

    def __init__(self, image_size, pooling=1):
        super().__init__(image_size)
        H, W = self.image_size
        if pooling < 1 or H % pooling or W % pooling:
            raise ValueError(f"pixel pooling {pooling} must be a positive divisor of both frame sides {H} and {W}")
        self.pooling = pooling
        self.pooled_size = (H // pooling, W // pooling)
        self.feature_dim = 3 * self.pooled_size[0] * self.pooled_size[1]
        self.name = f"pixels(frames={H}x{W}, pooling={pooling})"

    def _encode(self, frames):
        if self.pooling > 1:
            frames = F.avg_pool2d(frames, self.pooling)  # (B*C, 3, H/f, W/f)
        return frames.flatten(1)

    def _decode(self, features):
        frames = features.reshape(-1, 3, *self.pooled_size)
        return frames.repeat_interleave(self.pooling, dim=2).repeat_interleave(self.pooling, dim=3)


# ----------------------------------------------------------------------------- the flags -> an encoder

def build_frame_encoder(backbone_type, image_size, vit_backbone_size="base", vae_path=DEFAULT_VIDEO_VAE,
                        sdxl_vae_standardization=False, pixel_pooling=1):
    """The frozen encoder named by --backbone_type (vae | dinov2 | pixels) for frames of `image_size`."""
    if backbone_type == "vae":
        return VAEFrameEncoder(image_size, vae_path, sdxl_vae_standardization)
    if backbone_type == "dinov2":
        return DINOv2FrameEncoder(image_size, vit_backbone_size)
    if backbone_type == "pixels":
        return PixelFrameEncoder(image_size, pixel_pooling)
    raise ValueError(f"--backbone_type {backbone_type!r}: choose one of {', '.join(BACKBONE_TYPES)}")
