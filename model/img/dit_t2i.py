"""Diffusion Transformer baseline for text-to-image (docs/method.md §7.6): a DiT over frozen SD-VAE latents.

    c = TimestepEmbedder(t) + text_embeddings_projector(CLIP pooled caption)
    training: t ~ U{0..diffusion_steps-1} over the WHOLE schedule (no noise-level trick), loss = eps-MSE + vb
    generation: ancestral sampling (or DDIM, eta 0, with use_deterministic_reverse) from pure noise through all
                diffusion_steps steps, then VAE-decoding

Sampling does not clip the predicted x0 to [-1, 1]: latents are not bounded there (DiT's latent sampler does
the same). The frozen encoders live outside the module tree (model/img/encoders.py).
"""
import torch

from model.config import TextToImageConfig
from model.flops import dit_flops, num_patches
from model.frozen import VAE_LATENT_CHANNELS, FollowsDevice
from model.img.diffusion import GaussianDiffusion, diffusion_loss_report
from model.img.dit import DiT
from model.img.encoders import TextToImageEncoders
from model.protocol import Model


class DiT_IMG_T2I(FollowsDevice, Model):
    """DiT (eps + learned sigma) over latents, conditioned on projected CLIP caption embeddings."""

    def __init__(self, hparams, encoders=None):
        super().__init__()
        cfg = hparams if isinstance(hparams, TextToImageConfig) else TextToImageConfig.from_hparams(hparams)
        self.cfg = cfg
        self.encoders = encoders or TextToImageEncoders(cfg.vae_path, cfg.clip_text_encoder_size)
        # the DiT's condition_projector (Linear(clip_dim, D), default init) is the text_embeddings_projector
        self.dit = DiT(cfg.latent_size, cfg.patch_size, VAE_LATENT_CHANNELS, cfg.embedding_dim,
                       cfg.num_transformer_blocks, cfg.multiheaded_attention_heads, cfg.mlp_ratio, learn_sigma=True,
                       condition_dim=self.encoders.clip_dim)
        self.diffusion = GaussianDiffusion(cfg.diffusion_steps)

    @property
    def text_embeddings_projector(self):
        return self.dit.condition_projector

    @property
    def tokenizer(self):
        return self.encoders.tokenizer

    @property
    def tokens_per_sample(self):
        return num_patches(self.dit)

    def estimate_flops(self):
        """Training FLOPs per latent patch (model/flops.py); the frozen VAE and CLIP are not counted."""
        return dit_flops(self.dit)

    def denoiser(self, caption):
        """model_fn(x_t, t) -> [eps, v], conditioned on the captions; and the batch size."""
        y = self.encoders.caption_embeddings(caption).to(self.text_embeddings_projector.weight.dtype)  # (B, clip)
        return (lambda x, t: self.dit(x, t, y)), y.shape[0]

    @torch.no_grad()
    def generate(self, caption, generator=None):
        """Captions -> images (B, 3, S, S) in [-1, 1]: diffusion_steps sampling steps from N(0, 1) latents."""
        model_fn, B = self.denoiser(caption)
        weight = self.text_embeddings_projector.weight
        shape = (B, VAE_LATENT_CHANNELS, self.cfg.latent_size, self.cfg.latent_size)
        noise = torch.randn(shape, generator=generator, device=weight.device, dtype=weight.dtype)
        if self.cfg.use_deterministic_reverse:
            latents = self.diffusion.ddim_sample_loop(model_fn, noise=noise, eta=0.0, clip_denoised=False)
        else:
            latents = self.diffusion.p_sample_loop(model_fn, noise=noise, clip_denoised=False, generator=generator)
        return self.encoders.decode(latents)

    def forward_loss_wrapper(self, batch, phase="train", **unused):
        """Diffusion training loss at t ~ U{0..diffusion_steps-1} on the images' latents (every phase)."""
        latents = self.encoders.latents(batch["image"])  # (B, 4, s, s)
        model_fn, B = self.denoiser(batch["caption"])
        t = torch.randint(0, self.diffusion.num_timesteps, (B,), device=latents.device)
        return diffusion_loss_report(self.diffusion.training_losses(model_fn, latents, t), B)
