"""Frozen encoders of the text-to-image models (docs/method.md §7.6): the SD-VAE (model/frozen.py) and a CLIP
text encoder.

    latents = VAE.encode(images).latent_dist.mean * 0.18215      (B, 4, S/8, S/8), images in [-1, 1]
    images  = VAE.decode(latents / 0.18215)                      (B, 3, S, S), clamped to [-1, 1]
    caption = CLIPTextModel(input_ids, attention_mask).pooler_output   (B, clip_dim): the final-norm EOS state

Both load from a hub name or from a local directory written with `save_pretrained` (the way to run offline:
save them once on a machine with internet). Neither is ever trained: they load in eval mode with
requires_grad False and run under no_grad.

`TextToImageEncoders` bundles the two (plus the CLIP tokenizer) for a t2i model. The model keeps it as a plain
attribute, outside its nn.Module tree, so the encoders are not among `parameters()` (the optimiser never sees
them) and not in `state_dict()` (checkpoints hold only the trained weights; loading a checkpoint reloads the
encoders from `vae_path` / `clip_text_encoder_size`). `model.frozen.FollowsDevice` makes `.to()` / `.cuda()` move
them anyway.
"""
import torch

from model.frozen import (DEFAULT_VAE, VAE_DOWNSAMPLING, VAE_LATENT_CHANNELS, decode_latents, encode_latents, freeze,
                          load_pretrained, load_vae, pretrained_name, vae_downsampling)

CLIP_MAX_TOKENS = 77

# --clip_text_encoder_size (docs/method.md §7.6)
CLIP_TEXT_ENCODERS = {
    "small": "openai/clip-vit-base-patch32",
    "base": "openai/clip-vit-base-patch16",
    "large": "openai/clip-vit-large-patch14",
    "xl": "openai/clip-vit-large-patch14-336",
}


# ----------------------------------------------------------------------------- CLIP text encoder

def clip_text_encoder_name(size_or_name_or_dir):
    """A size key (small/base/large/xl) -> its hub name; a hub name (owner/name) or a local directory as is."""
    return pretrained_name(size_or_name_or_dir, CLIP_TEXT_ENCODERS, "clip_text_encoder_size")


def load_clip_text_encoder(size_or_name_or_dir="base"):
    """(frozen transformers CLIPTextModel, its CLIPTokenizer) from a size key, a hub name or a local directory."""
    from transformers import CLIPTextModel, CLIPTokenizer

    text_model, tokenizer = load_pretrained("CLIP text encoder (clip_text_encoder_size)", size_or_name_or_dir,
                                            clip_text_encoder_name(size_or_name_or_dir), CLIPTextModel, CLIPTokenizer)
    return freeze(text_model), tokenizer


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
