"""Text-to-image EBT (docs/method.md §7.6): thinking starts from random latents and walks down an energy conditioned
on the caption.

    c = text_embeddings_projector(CLIP pooled caption)        (B, D), the adaLN condition
    z_0 ~ N(0, 1) * gaussian_random_noise_scaling              (B, 4, S/8, S/8) (or zeros)
    z_{i+1} = z_i - alpha * dE(z_i | c)/dz_i                   E = bidirectional EBT over the latent grid
    loss = mean over steps of SmoothL1(z_i, VAE latents of the image)   (last step only with truncate_mcmc)

The VAE and the CLIP text encoder are frozen and live outside the module tree (model/img/encoders.py): they
are neither trained nor saved in checkpoints. Generation decodes the final latents with the VAE. System 2 at
test time (more steps, other alpha, Langevin noise, best-of-N by energy) uses the shared loop; the published
t2i model had no advanced inference. The replay buffer is not supported (as published).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import TextToImageEBTConfig
from model.flops import image_ebt_flops, num_patches, weight_count
from model.frozen import VAE_LATENT_CHANNELS, FollowsDevice
from model.img.bidirectional_ebt import BidirectionalEBT
from model.img.encoders import TextToImageEncoders
from model.thinking import EnergyMinimizer


class EBT_IMG_T2I(FollowsDevice, EnergyMinimizer):
    """Bidirectional EBT over VAE latents + alpha + a projector of CLIP caption embeddings to adaLN conditions."""

    def __init__(self, hparams, encoders=None):
        cfg = hparams if isinstance(hparams, TextToImageEBTConfig) else TextToImageEBTConfig.from_hparams(hparams)
        super().__init__(cfg)
        # plain attribute: frozen, not in parameters() or state_dict() (see encoders.py)
        self.encoders = encoders or TextToImageEncoders(cfg.vae_path, cfg.clip_text_encoder_size)
        D = cfg.embedding_dim
        self.text_embeddings_projector = nn.Linear(self.encoders.clip_dim, D, bias=True)  # PyTorch's default init
        self.transformer = BidirectionalEBT(cfg.latent_size, cfg.patch_size, VAE_LATENT_CHANNELS, D,
                                            cfg.num_transformer_blocks, cfg.multiheaded_attention_heads, cfg.mlp_ratio)

    @property
    def tokenizer(self):
        """The CLIP tokenizer the data pipeline must use (build_image_splits(clip_tokenizer=...))."""
        return self.encoders.tokenizer

    @property
    def tokens_per_sample(self):
        return num_patches(self.transformer)

    def estimate_flops(self):
        """Training FLOPs per latent patch (model/flops.py); the caption projector runs once per image, the
        frozen VAE and CLIP are not counted."""
        return image_ebt_flops(self.transformer, self.cfg, weight_count(self.text_embeddings_projector))

    def condition(self, caption):
        """Caption tokens {"input_ids", "attention_mask"} (B, 77) or strings -> adaLN conditions (B, D)."""
        embeddings = self.encoders.caption_embeddings(caption)  # (B, clip_dim), no graph: CLIP is frozen
        return self.text_embeddings_projector(embeddings.to(self.text_embeddings_projector.weight.dtype))

    def initial_latents(self, batch_size):
        """The guess thinking starts from: N(0, 1) * gaussian_random_noise_scaling, or zeros. (B, 4, s, s)"""
        weight = self.text_embeddings_projector.weight
        shape = (batch_size, VAE_LATENT_CHANNELS, self.cfg.latent_size, self.cfg.latent_size)
        if self.cfg.denoising_initial_condition == "zeros":
            return torch.zeros(shape, device=weight.device, dtype=weight.dtype)
        return torch.randn(shape, device=weight.device, dtype=weight.dtype) * self.cfg.gaussian_random_noise_scaling

    def forward(self, caption, learning=False, final_energy=False):
        """Think from the initial latents to the latents of the captions. -> ThinkingResult of (B, 4, s, s)."""
        condition = self.condition(caption)
        B = condition.shape[0]
        return self.minimize(lambda z, landscape: self.transformer(z, condition), self.initial_latents(B),
                             (B, 1, 1, 1), learning, final_energy)

    def advanced_inference(self, caption, icfg):
        """System 2 thinking at test time: G guesses per caption, keep the one chosen by its final energy."""
        condition = self.condition(caption)
        B = condition.shape[0]
        energy_for = lambda G: (lambda z, landscape: self.transformer(z, condition.repeat_interleave(G, 0)))
        return self.minimize_best_of(energy_for, self.initial_latents, B, icfg)

    @torch.no_grad()
    def generate(self, caption, inference=None):
        """Captions -> images (B, 3, S, S) in [-1, 1]: think (System 2 with an InferenceConfig), then VAE-decode."""
        result = self.advanced_inference(caption, inference) if inference is not None else self(caption)
        return self.encoders.decode(result.states[-1])

    def forward_loss_wrapper(self, batch, phase="train", final_energy=None, inference=None):
        """Loss and logs for batch {"image": (B, 3, S, S) in [-1, 1], "caption": tokens} (docs/method.md §7.6)."""
        target = self.encoders.latents(batch["image"])  # (B, 4, s, s)
        training = phase == "train"
        result, final_energy = self.think_for_loss(batch["caption"], training, final_energy, inference)
        step_losses = torch.stack([F.smooth_l1_loss(z, target) for z in result.states])
        final = result.states[-1].detach()
        return {
            **self.thinking_report(result, step_losses, final_energy),
            "l1_loss": F.l1_loss(final, target),
            "mse_raw_loss": F.mse_loss(final, target),  # in latent space
            "count": torch.tensor(target.shape[0], device=target.device),
        }
