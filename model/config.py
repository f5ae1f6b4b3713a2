"""Typed model configs and the model-size presets (spec 1.3).

Field names equal the published flag names, so a config is built from the hyperparameters that
`train_model.py` produces (an argparse Namespace, or the dict stored in a checkpoint) with
`Config.from_hparams(hp)`; fields missing from `hp` keep their defaults.
"""
from dataclasses import dataclass, fields

from model.nlp.vocab_step import fused_step_blocker

# name: (layers, heads, embedding dim). small..xl follow Mamba's table; smaller ones were set
# empirically by the EBT authors. The FFN width is not part of the table (hidden = D by default).
MODEL_SIZES = {
    "4xs": (2, 2, 128),
    "3xs": (4, 4, 256),
    "xxs": (6, 6, 384),
    "2xs": (6, 6, 384),  # identical to xxs, as published
    "xs": (12, 6, 384),
    "small": (12, 12, 768),
    "medium": (24, 16, 1024),
    "large": (24, 16, 1536),
    "xl": (24, 32, 2048),
}

# Peak learning rates the published size table suggests (comment in model_utils.model_sizes).
SUGGESTED_PEAK_LR = {"4xs": 0.0024, "3xs": 0.0018, "xxs": 0.0012, "2xs": 0.0012, "xs": 0.0009,
                     "small": 0.0006, "medium": 0.0003, "large": 0.00025, "xl": 0.0002}

# DiT paper table: size -> (layers, heads, dim); every size comes with patch 2, 4, 8 and 16.
_DIT_SIZES = {"S": (12, 6, 384), "B": (12, 12, 768), "L": (24, 16, 1024), "XL": (28, 16, 1152)}
IMAGE_MODEL_SIZES = {f"{family}-{size}/{patch}": (depth, heads, dim, patch)
                     for family in ("DiT", "EBT")
                     for size, (depth, heads, dim) in _DIT_SIZES.items()
                     for patch in (2, 4, 8, 16)}


def image_model_size(name):
    """'DiT-L/16' or 'EBT-L/16' -> (depth, heads, dim, patch)."""
    if name not in IMAGE_MODEL_SIZES:
        raise ValueError(f"unknown image model size {name!r}; valid: {', '.join(IMAGE_MODEL_SIZES)}")
    return IMAGE_MODEL_SIZES[name]


EBT_TYPES = ("default", "time_embed", "adaln", "adaln_zero")
FUSED_VOCAB_LOSS_CHOICES = ("auto", "on", "off")


def _get(hp, name):
    return hp.get(name) if isinstance(hp, dict) else getattr(hp, name, None)


class _FromHparams:
    @classmethod
    def from_hparams(cls, hp, **overrides):
        values = {f.name: _get(hp, f.name) for f in fields(cls)}
        values = {k: v for k, v in values.items() if v is not None}
        values.update(overrides)
        return cls(**values)


@dataclass
class TransformerConfig(_FromHparams):
    """The llama-style trunk shared by the Transformer++ and the autoregressive EBT."""
    vocab_size: int = 258
    context_length: int = 64
    embedding_dim: int = 128
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = None
    weight_initialization_method: str = "xavier"
    weight_initialization_gain: float = 1.0
    pad_token_id: int = -100  # ignored by the loss
    # the vocabulary side of the loss (model/nlp/vocab_step.py): "auto" = fused where it applies
    fused_vocab_loss: str = "auto"
    vocab_chunk_mb: float | None = None  # size of its chunked (rows, V) buffers; None: the device's default

    def __post_init__(self):
        if self.fused_vocab_loss not in FUSED_VOCAB_LOSS_CHOICES:
            raise ValueError(f"fused_vocab_loss {self.fused_vocab_loss!r} must be one of {FUSED_VOCAB_LOSS_CHOICES}")
        if self.vocab_chunk_mb is not None and not self.vocab_chunk_mb > 0:
            raise ValueError(f"vocab_chunk_mb {self.vocab_chunk_mb} must be positive (MB per chunked buffer)")
        if self.embedding_dim % self.multiheaded_attention_heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by "
                             f"multiheaded_attention_heads {self.multiheaded_attention_heads}")
        if (self.embedding_dim // self.multiheaded_attention_heads) % 2:
            raise ValueError("the head dimension (embedding_dim / heads) must be even for rotary embeddings")


@dataclass
class ThinkingConfig(_FromHparams):
    """The thinking options every EBT shares, text or image (spec 2.6, 2.9, 2.10, 5.3)."""
    mcmc_num_steps: int = 2
    mcmc_step_size: float = 500.0
    mcmc_step_size_learnable: bool = True
    # System 2 training
    randomize_mcmc_step_size_scale: float = 1.0
    randomize_mcmc_num_steps: int = 0
    randomize_mcmc_num_steps_min: int = 0
    randomize_mcmc_num_steps_final_landscape: bool = False
    langevin_dynamics_noise: float = 0.0
    langevin_dynamics_noise_learnable: bool = False
    no_langevin_during_eval: bool = False
    no_mcmc_detach: bool = False
    truncate_mcmc: bool = False
    clamp_futures_grad: bool = False
    clamp_futures_grad_max_change: float = 9.0
    clamp_max_after_warm_up: float = 0.0
    absolute_clamp: float = 0.0

    def __post_init__(self):
        if self.mcmc_num_steps < 1:
            raise ValueError("mcmc_num_steps must be at least 1")
        if self.randomize_mcmc_step_size_scale < 1:
            raise ValueError("randomize_mcmc_step_size_scale must be >= 1 (alpha is drawn from [alpha/s, alpha*s])")
        if self.randomize_mcmc_num_steps_min > self.randomize_mcmc_num_steps + 1:
            raise ValueError("randomize_mcmc_num_steps_min must be at most randomize_mcmc_num_steps + 1")


@dataclass
class EBTConfig(TransformerConfig, ThinkingConfig):
    """Autoregressive EBT for text: the trunk, the shared thinking options and the text-only ones."""
    ebt_type: str = "time_embed"
    normalize_initial_condition: bool = True
    denoising_initial_condition: str = "random_noise"
    gaussian_random_noise_scaling: float = 1.0
    vocab_to_embed_uses_prob_dist: bool = False
    ebt_attention: str = "fast"  # "fast" (cached observed stream) or "reference" (one masked attention)
    activation_checkpointing: bool = False  # recompute prediction-stream blocks in the backward pass
    # System 2 training, text only (spec 2.7-2.9)
    contrastive_loss: bool = False
    contrastive_loss_coeff: float = 0.0005
    soften_target_prob_dist: float = 0.0
    mcmc_replay_buffer: bool = False
    mcmc_replay_buffer_size: int = 192
    mcmc_replay_buffer_sample_bs_percent: float = 0.5
    batch_size_per_device: int = 32  # sets how many replayed rows join a batch

    def __post_init__(self):
        TransformerConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        if self.ebt_type not in EBT_TYPES:
            raise ValueError(f"ebt_type {self.ebt_type!r} is not one of {EBT_TYPES}")
        if self.ebt_attention not in ("fast", "reference"):
            raise ValueError(f"ebt_attention {self.ebt_attention!r} must be 'fast' or 'reference'")
        if self.denoising_initial_condition not in ("random_noise", "zeros"):
            raise ValueError("denoising_initial_condition must be random_noise or zeros for NLP")
        if self.vocab_to_embed_uses_prob_dist and not self.normalize_initial_condition:
            raise ValueError("vocab_to_embed_uses_prob_dist needs normalize_initial_condition "
                             "(the predicted distribution must be probabilities)")
        blocker = fused_step_blocker(self)
        if self.fused_vocab_loss == "on" and blocker:
            raise ValueError(f"fused_vocab_loss 'on' cannot run: {blocker}; use 'auto' or 'off'")

    @property
    def uses_fused_vocab_step(self):
        return self.fused_vocab_loss != "off" and fused_step_blocker(self) is None


@dataclass
class ImageConfig(_FromHparams):
    """Image denoising (spec 5.1-5.4): the DiT-style network, the noise level and the diffusion schedule."""
    image_dims: int = 32  # square side in pixels
    patch_size: int = 8
    embedding_dim: int = 128
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = None  # MLP ratio; None means 1 (the published scripts pass 1)
    image_channels: int = 3  # 3 for pixels, 4 for VAE latents
    denoise_images_noise_level: float = 0.1  # fraction of a standard 1000-step DDPM schedule
    trained_noise_level: float | None = None  # the level the schedule was built for (set when training)
    randomize_denoise_images_noise_level: bool = False
    diffusion_steps: int = 100
    # DiT denoising at test time (spec 5.6) and the sampler of its logged images
    infer_increase_steps: int = 0  # start DDIM at this timestep instead of the noise level's
    infer_recurse_diffusion_n_times: int = 0
    use_deterministic_reverse: bool = False

    def __post_init__(self):
        if isinstance(self.image_dims, (list, tuple)):
            if len(set(self.image_dims)) != 1:
                raise ValueError(f"image_dims {list(self.image_dims)} must be square")
            self.image_dims = self.image_dims[0]
        if self.image_dims % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide the image side {self.image_dims}")
        if self.embedding_dim % self.multiheaded_attention_heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by "
                             f"multiheaded_attention_heads {self.multiheaded_attention_heads}")
        if not 0 < self.denoise_images_noise_level <= 1:
            raise ValueError("denoise_images_noise_level must be in (0, 1]")
        if self.trained_noise_level is None:
            self.trained_noise_level = self.denoise_images_noise_level
        if int(self.diffusion_steps / self.trained_noise_level) < self.diffusion_steps:
            raise ValueError("the noise level must be at most 1 (diffusion_steps / level steps in all)")

    @property
    def mlp_ratio(self):
        return self.ffn_dim_multiplier or 1.0


@dataclass
class ImageEBTConfig(ImageConfig, ThinkingConfig):
    """Bidirectional EBT denoiser: the image options plus the shared thinking options."""
    mcmc_num_steps: int = 1
    mcmc_step_size: float = 3000.0

    def __post_init__(self):
        ImageConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)


@dataclass
class TextToImageConfig(_FromHparams):
    """Text-to-image (spec 5.5): a network over frozen SD-VAE latents, conditioned on a frozen CLIP caption
    embedding. Defaults are the published t2i setup (256x256 images, patch 2 on the 32x32 latent grid)."""
    image_dims: int = 256  # square side in pixels; the network sees latents of side image_dims / 8
    patch_size: int = 2  # on the latent grid
    embedding_dim: int = 128
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = None  # MLP ratio; None means 1
    clip_text_encoder_size: str = "base"  # small/base/large/xl (model/img/encoders.py), a hub name or a local dir
    vae_path: str = "stabilityai/sd-vae-ft-ema"  # the published frozen VAE; a hub name or a local dir
    diffusion_steps: int = 1000  # DiT: the whole schedule, t ~ U{0..diffusion_steps-1}
    use_deterministic_reverse: bool = False  # DiT sampling: DDIM (eta 0) instead of ancestral

    def __post_init__(self):
        if isinstance(self.image_dims, (list, tuple)):
            if len(set(self.image_dims)) != 1:
                raise ValueError(f"image_dims {list(self.image_dims)} must be square")
            self.image_dims = self.image_dims[0]
        if self.image_dims % 8:
            raise ValueError(f"image_dims {self.image_dims} is not divisible by 8: text-to-image works on VAE "
                             f"latents of side image_dims / 8")
        if self.latent_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} does not divide the latent side {self.latent_size} "
                             f"(image_dims {self.image_dims} / 8)")
        if self.embedding_dim % self.multiheaded_attention_heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by "
                             f"multiheaded_attention_heads {self.multiheaded_attention_heads}")
        if self.diffusion_steps <= 20:  # the linear schedule's last beta is 0.02 * 1000 / diffusion_steps
            raise ValueError(f"diffusion_steps {self.diffusion_steps}: text-to-image diffuses over the whole "
                             f"schedule, which needs more than 20 steps (the last beta is 20 / diffusion_steps)")

    @property
    def latent_size(self):
        return self.image_dims // 8

    @property
    def mlp_ratio(self):
        return self.ffn_dim_multiplier or 1.0


@dataclass
class TextToImageEBTConfig(TextToImageConfig, ThinkingConfig):
    """Text-to-image EBT: thinks from random (or zero) latents; published S1 script: 2 steps, alpha 3000."""
    mcmc_num_steps: int = 2
    mcmc_step_size: float = 3000.0
    denoising_initial_condition: str = "random_noise"  # or "zeros"
    gaussian_random_noise_scaling: float = 1.0  # std of the random initial latents
    mcmc_replay_buffer: bool = False  # not supported for images (as published)

    def __post_init__(self):
        TextToImageConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        if self.denoising_initial_condition not in ("random_noise", "zeros"):
            raise ValueError(f"denoising_initial_condition {self.denoising_initial_condition!r}: text-to-image "
                             f"starts from random_noise or zeros")
        if self.mcmc_replay_buffer:
            raise NotImplementedError("mcmc_replay_buffer is not supported for text-to-image (nor in the published "
                                      "code); drop --mcmc_replay_buffer")


@dataclass
class VideoConfig(TransformerConfig):
    """Next-frame prediction in a frozen encoder's feature space (spec 6.1, 6.2): the causal trunk sees
    frame features down-projected to its width; predictions live in the feature space."""
    feature_dim: int = 3136  # the encoder's per-frame feature size (SD-VAE latents of 224x224 frames)
    weight_tie_vae_proj: bool = False  # Transformer++: the up-projection is the down-projection transposed


@dataclass
class VideoEBTConfig(VideoConfig, ThinkingConfig):
    """Autoregressive EBT over frame features: the trunk options of text (ebt_type, ...) and the thinking."""
    ebt_type: str = "time_embed"
    denoising_initial_condition: str = "random_noise"  # random_noise | zeros | most_recent_embedding
    gaussian_random_noise_scaling: float = 1.0
    mcmc_step_size: float = 30000.0
    activation_checkpointing: bool = False

    def __post_init__(self):
        VideoConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        if self.ebt_type not in EBT_TYPES:
            raise ValueError(f"ebt_type {self.ebt_type!r} is not one of {EBT_TYPES}")
        if self.denoising_initial_condition not in ("random_noise", "zeros", "most_recent_embedding"):
            raise ValueError("denoising_initial_condition must be random_noise, zeros or most_recent_embedding "
                             "for video")


@dataclass
class InferenceConfig(_FromHparams):
    """System 2 thinking at test time (spec 4.1, 4.2); used with --infer_ebt_advanced."""
    infer_ebt_num_steps: int = 1
    infer_ebt_override_alpha: float = 0.0  # 0: trained alpha; (0, 1): multiplier; >= 1: the value
    infer_langevin_dynamics_noise: float = 0.0  # 0: the trained noise std
    infer_langevin_first_step: bool = False
    infer_generated_samples: int = 1
    infer_energy_sampling_technique: str = "min"
    infer_accept_lower_energies: bool = False
    infer_steps_final_landscape: bool = False
    infer_alpha_final_landscape: bool = False

    def __post_init__(self):
        if self.infer_ebt_num_steps < 1 or self.infer_generated_samples < 1:
            raise ValueError("infer_ebt_num_steps and infer_generated_samples must be at least 1")
        if self.infer_ebt_override_alpha < 0:
            raise ValueError("infer_ebt_override_alpha must be >= 0")
        if self.infer_energy_sampling_technique not in ("min", "max", "max_gap"):
            raise ValueError("infer_energy_sampling_technique must be min, max or max_gap")
