"""Frozen encoders of the text-to-image models (docs/method.md §7.6): the SD-VAE and a CLIP text encoder.

    latents = VAE.encode(images).latent_dist.mean * 0.18215      (B, 4, S/8, S/8), images in [-1, 1]
    images  = VAE.decode(latents / 0.18215)                      (B, 3, S, S), clamped to [-1, 1]
    caption = CLIPTextModel(input_ids, attention_mask).pooler_output   (B, clip_dim): the final-norm EOS state

Both load from a hub name or from a local directory written with `save_pretrained` (the way to run offline:
save them once on a machine with internet). Neither is ever trained: they load in eval mode with
requires_grad False and run under no_grad.

`TextToImageEncoders` bundles the two (plus the CLIP tokenizer) for a t2i model. The model keeps it as a plain
attribute, outside its nn.Module tree, so the encoders are not among `parameters()` (the optimiser never sees
them) and not in `state_dict()` (checkpoints hold only the trained weights; loading a checkpoint reloads the
encoders from `vae_path` / `clip_text_encoder_size`). `FollowsDevice` makes `.to()` / `.cuda()` move them anyway.
"""
import os

import torch

VAE_SCALE = 0.18215  # SD-VAE latent scaling: latents of unit-ish variance
VAE_DOWNSAMPLING = 8  # image side / latent side
VAE_LATENT_CHANNELS = 4
DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"  # the published t2i VAE (use_ema=True)
CLIP_MAX_TOKENS = 77

# --clip_text_encoder_size (docs/method.md §7.6)
CLIP_TEXT_ENCODERS = {
    "small": "openai/clip-vit-base-patch32",
    "base": "openai/clip-vit-base-patch16",
    "large": "openai/clip-vit-large-patch14",
    "xl": "openai/clip-vit-large-patch14-336",
}


def _freeze(module):
    module.eval()
    module.requires_grad_(False)
    return module


def _load_error(what, name, tried, error):
    return OSError(f"could not load the {what} {name!r} (tried {tried}): {type(error).__name__}: {error}\n"
                   f"Without access to the Hugging Face hub, save it once elsewhere with save_pretrained and pass "
                   f"that local directory instead.")


# ----------------------------------------------------------------------------- VAE

def load_vae(name_or_dir=DEFAULT_VAE):
    """A frozen diffusers AutoencoderKL from a hub name (e.g. stabilityai/sd-vae-ft-ema) or a local directory."""
    from diffusers import AutoencoderKL
    tried = f"local directory {name_or_dir}" if os.path.isdir(name_or_dir) else f"hub model {name_or_dir}"
    try:
        vae = AutoencoderKL.from_pretrained(name_or_dir)
    except (OSError, ValueError) as error:  # missing files, offline hub, malformed repo ids
        raise _load_error("VAE (vae_path)", name_or_dir, tried, error) from error
    return _freeze(vae)


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


# ----------------------------------------------------------------------------- CLIP text encoder

def pretrained_name(size_or_name_or_dir, sizes, flag):
    """A size key of `sizes` -> its hub name; a hub name (owner/name) or a local directory as is."""
    if size_or_name_or_dir in sizes:
        return sizes[size_or_name_or_dir]
    if os.path.isdir(size_or_name_or_dir) or "/" in size_or_name_or_dir:
        return size_or_name_or_dir
    raise ValueError(f"{flag} {size_or_name_or_dir!r}: choose one of {', '.join(sizes)}, a hub name (owner/name) "
                     "or a local directory")


def clip_text_encoder_name(size_or_name_or_dir):
    """A size key (small/base/large/xl) -> its hub name; a hub name (owner/name) or a local directory as is."""
    return pretrained_name(size_or_name_or_dir, CLIP_TEXT_ENCODERS, "clip_text_encoder_size")


def load_clip_text_encoder(size_or_name_or_dir="base"):
    """(frozen transformers CLIPTextModel, its CLIPTokenizer) from a size key, a hub name or a local directory."""
    from transformers import CLIPTextModel, CLIPTokenizer
    name = clip_text_encoder_name(size_or_name_or_dir)
    tried = f"local directory {name}" if os.path.isdir(name) else f"hub model {name}"
    try:
        text_model = CLIPTextModel.from_pretrained(name)
        tokenizer = CLIPTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise _load_error("CLIP text encoder (clip_text_encoder_size)", size_or_name_or_dir, tried, error) from error
    return _freeze(text_model), tokenizer


@torch.no_grad()
def caption_embedding(text_model, input_ids, attention_mask=None):
    """CLIP pooled caption embedding (B, clip_dim): the final-layer-norm hidden state at each caption's EOS."""
    return text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output


# ----------------------------------------------------------------------------- what a t2i model holds

class TextToImageEncoders:
    """The frozen VAE, CLIP text encoder and tokenizer of a t2i model (a plain object, not an nn.Module)."""

    def __init__(self, vae_path=DEFAULT_VAE, clip_text_encoder_size="base"):
        clip_text_encoder_name(clip_text_encoder_size)  # an unknown size fails before any download
        self.vae = load_vae(vae_path)
        if vae_downsampling(self.vae) != VAE_DOWNSAMPLING or self.vae.config.latent_channels != VAE_LATENT_CHANNELS:
            raise ValueError(f"vae_path {vae_path!r}: t2i needs an SD-style VAE ({VAE_DOWNSAMPLING}x downsampling, "
                             f"{VAE_LATENT_CHANNELS} latent channels); this one has {vae_downsampling(self.vae)}x, "
                             f"{self.vae.config.latent_channels} channels")
        self.text_model, self.tokenizer = load_clip_text_encoder(clip_text_encoder_size)

    @property
    def modules(self):
        return (self.vae, self.text_model)

    @property
    def clip_dim(self):
        return self.text_model.config.hidden_size

    def latents(self, images):
        """(B, 3, S, S) in [-1, 1] -> (B, 4, S/8, S/8) training targets."""
        return encode_latents(self.vae, images)

    def decode(self, latents):
        return decode_latents(self.vae, latents)

    def tokenize(self, captions):
        """Caption strings -> {"input_ids", "attention_mask"} (B, 77), as the data pipeline tokenizes them."""
        return self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=CLIP_MAX_TOKENS,
                              return_tensors="pt")

    def caption_embeddings(self, caption):
        """A batch's "caption": {"input_ids", "attention_mask"} (B, 77) or a list of strings -> (B, clip_dim)."""
        if isinstance(caption, (list, tuple)):
            caption = self.tokenize(caption)
        device = self.text_model.device
        mask = caption.get("attention_mask")
        return caption_embedding(self.text_model, caption["input_ids"].to(device),
                                 None if mask is None else mask.to(device))


class FollowsDevice:
    """Mixin for a t2i nn.Module holding `self.encoders` (TextToImageEncoders): .to() / .cuda() / .half() move the
    unregistered frozen encoders too, while parameters(), state_dict() and train()/eval() never see them."""

    def _apply(self, fn, *args, **kwargs):
        result = super()._apply(fn, *args, **kwargs)
        encoders = self.__dict__.get("encoders")
        if encoders is not None:
            for module in encoders.modules:
                module._apply(fn)
        return result
