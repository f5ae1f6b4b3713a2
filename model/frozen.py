"""Frozen pretrained parts the models use but never train, shared by images and video: loading from a hub name or
a local directory with one kind of error, freezing, the SD-VAE, and `FollowsDevice` for models that keep such
parts outside their nn.Module tree (not in parameters() or state_dict(), yet moved by .to())."""
import os

import torch

VAE_SCALE = 0.18215  # SD-VAE latent scaling: latents of unit-ish variance
VAE_DOWNSAMPLING = 8  # image side / latent side
VAE_LATENT_CHANNELS = 4
DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"  # the published t2i VAE (use_ema=True)


def freeze(module):
    """Eval mode, no gradients: a module that is never trained."""
    module.eval()
    module.requires_grad_(False)
    return module


def load_error(what, name, tried, error):
    """The OSError of a pretrained part that would not load, with the offline way out."""
    return OSError(f"could not load the {what} {name!r} (tried {tried}): {type(error).__name__}: {error}\n"
                   f"Without access to the Hugging Face hub, save it once elsewhere with save_pretrained and pass "
                   f"that local directory instead.")


def load_pretrained(what, given, name, *classes):
    """[cls.from_pretrained(name) for cls in classes]: a hub name or a local directory. `given` is what the user
    wrote (a size key, a name or a folder); a failure is one OSError naming it and the offline way out."""
    tried = f"local directory {name}" if os.path.isdir(name) else f"hub model {name}"
    try:
        return [cls.from_pretrained(name) for cls in classes]
    except (OSError, ValueError) as error:  # missing files, offline hub, malformed repo ids
        raise load_error(what, given, tried, error) from error


def pretrained_name(size_or_name_or_dir, sizes, flag):
    """A size key of `sizes` -> its hub name; a hub name (owner/name) or a local directory as is."""
    if size_or_name_or_dir in sizes:
        return sizes[size_or_name_or_dir]
    if os.path.isdir(size_or_name_or_dir) or "/" in size_or_name_or_dir:
        return size_or_name_or_dir
    raise ValueError(f"{flag} {size_or_name_or_dir!r}: choose one of {', '.join(sizes)}, a hub name (owner/name) "
                     "or a local directory")


# ----------------------------------------------------------------------------- VAE

def load_vae(name_or_dir=DEFAULT_VAE):
    """A frozen diffusers AutoencoderKL from a hub name (e.g. stabilityai/sd-vae-ft-ema) or a local directory."""
    from diffusers import AutoencoderKL

    vae, = load_pretrained("VAE (vae_path)", name_or_dir, name_or_dir, AutoencoderKL)
    return freeze(vae)


def vae_downsampling(vae):
    """Image side / latent side of an AutoencoderKL: one 2x downsampling between consecutive encoder blocks."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_latents(vae, images):
    """Images (B, 3, S, S) in [-1, 1] -> scaled latent means (B, 4, S/8, S/8) (deterministic, no sampling)."""
    return vae.encode(images.to(vae.dtype)).latent_dist.mean * VAE_SCALE


@torch.no_grad()
def decode_latents(vae, latents):
    """Scaled latents (B, 4, s, s) -> images (B, 3, 8s, 8s) in [-1, 1]."""
    return vae.decode(latents.to(vae.dtype) / VAE_SCALE).sample.clamp(-1, 1)


class FollowsDevice:
    """Mixin for an nn.Module holding frozen parts as `self.encoders` (an object with a `modules` list): .to() /
    .cuda() / .half() move those unregistered modules too, while parameters(), state_dict() and train()/eval() never see them."""

    def _apply(self, fn, *args, **kwargs):
        result = super()._apply(fn, *args, **kwargs)
        encoders = self.__dict__.get("encoders")
        if encoders is not None:
            for module in encoders.modules:
                module._apply(fn)
        return result
