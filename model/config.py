"""Typed model configs and the model-size presets (docs/method.md §10.1).

A config lists what a model reads. Field names equal the flag names of `train_model.py`, and a field
declared with `flag(name)` takes that flag's default from the command line's definition (utils/cli.py),
so a config built in Python and a run from the command line start from the same values. A config is
built from the hyperparameters `train_model.py` produces (an argparse Namespace, or the dict stored in a
checkpoint) with `Config.from_hparams(hp)`; fields missing from `hp` keep their defaults. The checks of
model options live here, in `__post_init__`; the command line runs them by building the config
(`config_class`), so each is written once.
"""
from dataclasses import dataclass, field, fields

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


def flag(name):
    """A config field that is the command-line flag `name`, with the flag's default."""
    def default():
        from utils.cli import flag_default  # at build time: utils.cli imports this module

        return flag_default(name)
    return field(default_factory=default)


def _modality_default(name, modality):
    from utils.cli import MODALITY_DEFAULTS

    return MODALITY_DEFAULTS[name][modality]


def _get(hp, name):
    return hp.get(name) if isinstance(hp, dict) else getattr(hp, name, None)


class FromHparams:
    @classmethod
    def from_hparams(cls, hp, **overrides):
        values = {f.name: _get(hp, f.name) for f in fields(cls)}
        values = {k: v for k, v in values.items() if v is not None}
        values.update(overrides)
        return cls(**values)


@dataclass
class TransformerConfig(FromHparams):
    """The llama-style trunk shared by the Transformer++ and the autoregressive EBT."""
    vocab_size: int = 258  # set from the tokenizer
    context_length: int = flag("context_length")
    embedding_dim: int = 128  # set from --model_size / --override_embedding_dim
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = flag("ffn_dim_multiplier")
    weight_initialization_method: str = flag("weight_initialization_method")
    weight_initialization_gain: float = flag("weight_initialization_gain")
    pad_token_id: int = -100  # ignored by the loss
    # the vocabulary side of the loss (model/nlp/vocab_step.py): "auto" = fused where it applies
    fused_vocab_loss: str = flag("fused_vocab_loss")
    vocab_chunk_mb: float | None = flag("vocab_chunk_mb")  # its chunked (rows, V) buffers; None: the device's

    def __post_init__(self):
        if self.fused_vocab_loss not in FUSED_VOCAB_LOSS_CHOICES:
            raise ValueError(f"--fused_vocab_loss {self.fused_vocab_loss!r} must be one of {FUSED_VOCAB_LOSS_CHOICES}")
        if self.vocab_chunk_mb is not None and not self.vocab_chunk_mb > 0:
            raise ValueError(f"--vocab_chunk_mb {self.vocab_chunk_mb:g} must be positive (MB per chunked buffer, "
                             f"e.g. 64)")
        if self.context_length < 2:
            raise ValueError(f"--context_length {self.context_length} is too short: give the tokens (frames) a row "
                             f"reads, at least 2 (the paper: 256 tokens, 16 frames)")
        _check_heads(self.embedding_dim, self.multiheaded_attention_heads)
        if (self.embedding_dim // self.multiheaded_attention_heads) % 2:
            raise ValueError(f"the head width (width {self.embedding_dim} / {self.multiheaded_attention_heads} heads) "
                             f"must be even for rotary embeddings; change --multiheaded_attention_heads")


def _check_heads(width, heads):
    if width % heads:
        raise ValueError(f"--multiheaded_attention_heads {heads} does not divide the width {width}; pick a divisor "
                         f"or change --override_embedding_dim")


@dataclass
class ThinkingConfig(FromHparams):
    """The thinking options every EBT shares, text, image or video (docs/method.md §2, §4)."""
    mcmc_num_steps: int = flag("mcmc_num_steps")
    mcmc_step_size: float = flag("mcmc_step_size")
    mcmc_step_size_learnable: bool = flag("mcmc_step_size_learnable")
    # System 2 training
    randomize_mcmc_step_size_scale: float = flag("randomize_mcmc_step_size_scale")
    randomize_mcmc_num_steps: int = flag("randomize_mcmc_num_steps")
    randomize_mcmc_num_steps_min: int = flag("randomize_mcmc_num_steps_min")
    randomize_mcmc_num_steps_final_landscape: bool = flag("randomize_mcmc_num_steps_final_landscape")
    langevin_dynamics_noise: float = flag("langevin_dynamics_noise")
    langevin_dynamics_noise_learnable: bool = flag("langevin_dynamics_noise_learnable")
    no_langevin_during_eval: bool = flag("no_langevin_during_eval")
    no_mcmc_detach: bool = flag("no_mcmc_detach")
    truncate_mcmc: bool = flag("truncate_mcmc")
    clamp_futures_grad: bool = flag("clamp_futures_grad")
    clamp_futures_grad_max_change: float = flag("clamp_futures_grad_max_change")
    clamp_max_after_warm_up: float = flag("clamp_max_after_warm_up")
    absolute_clamp: float = flag("absolute_clamp")

    def __post_init__(self):
        if self.mcmc_num_steps < 1:
            raise ValueError("--mcmc_num_steps must be at least 1")
        if not self.mcmc_step_size > 0:
            raise ValueError(f"--mcmc_step_size {self.mcmc_step_size:g} must be positive")
        if self.randomize_mcmc_step_size_scale < 1:
            raise ValueError("--randomize_mcmc_step_size_scale must be >= 1 (alpha is drawn from [alpha/s, alpha*s])")
        if self.randomize_mcmc_num_steps < 0 or self.randomize_mcmc_num_steps_min > self.randomize_mcmc_num_steps + 1:
            raise ValueError("--randomize_mcmc_num_steps must be >= 0 and --randomize_mcmc_num_steps_min at most "
                             "--randomize_mcmc_num_steps + 1")
        if self.langevin_dynamics_noise < 0:
            raise ValueError("--langevin_dynamics_noise is a standard deviation: use a value >= 0")
        if self.langevin_dynamics_noise_learnable and not self.langevin_dynamics_noise:
            raise ValueError("--langevin_dynamics_noise_learnable needs a starting --langevin_dynamics_noise > 0")


@dataclass
class EBTConfig(TransformerConfig, ThinkingConfig):
    """Autoregressive EBT for text: the trunk, the shared thinking options and the text-only ones."""
    ebt_type: str = flag("ebt_type")
    normalize_initial_condition: bool = flag("normalize_initial_condition")
    denoising_initial_condition: str = flag("denoising_initial_condition")
    gaussian_random_noise_scaling: float = flag("gaussian_random_noise_scaling")
    vocab_to_embed_uses_prob_dist: bool = flag("vocab_to_embed_uses_prob_dist")
    ebt_attention: str = flag("ebt_attention")  # "fast" (cached observed stream) or "reference" (one masked attention)
    activation_checkpointing: bool = flag("activation_checkpointing")  # recompute prediction-stream blocks
    # System 2 training, text only
    contrastive_loss: bool = flag("contrastive_loss")
    contrastive_loss_coeff: float = flag("contrastive_loss_coeff")
    soften_target_prob_dist: float = flag("soften_target_prob_dist")
    mcmc_replay_buffer: bool = flag("mcmc_replay_buffer")
    mcmc_replay_buffer_size: int = flag("mcmc_replay_buffer_size")
    mcmc_replay_buffer_sample_bs_percent: float = flag("mcmc_replay_buffer_sample_bs_percent")
    batch_size_per_device: int = flag("batch_size_per_device")  # sets how many replayed rows join a batch

    def __post_init__(self):
        TransformerConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        _check_ebt_type(self.ebt_type)
        if self.ebt_attention not in ("fast", "reference"):
            raise ValueError(f"--ebt_attention {self.ebt_attention!r} must be fast or reference")
        if self.denoising_initial_condition not in ("random_noise", "zeros"):
            raise ValueError(f"--denoising_initial_condition {self.denoising_initial_condition}: text starts from "
                             f"random_noise or zeros (most_recent_embedding copies a video frame)")
        if self.vocab_to_embed_uses_prob_dist and not self.normalize_initial_condition:
            raise ValueError("--vocab_to_embed_uses_prob_dist needs --normalize_initial_condition (the predicted "
                             "distribution must be probabilities)")
        if self.mcmc_replay_buffer and not 0 < self.mcmc_replay_buffer_sample_bs_percent <= 1:
            raise ValueError("--mcmc_replay_buffer_sample_bs_percent is a fraction in (0, 1]")
        if self.mcmc_replay_buffer and self.mcmc_replay_buffer_size < 1:
            raise ValueError("--mcmc_replay_buffer_size must be at least 1")
        if not 0 <= self.soften_target_prob_dist < 1:
            raise ValueError("--soften_target_prob_dist is a label-smoothing fraction in [0, 1)")
        blocker = fused_step_blocker(self)
        if self.fused_vocab_loss == "on" and blocker:
            raise ValueError(f"--fused_vocab_loss on cannot run: {blocker}; use auto (or off)")

    @property
    def uses_fused_vocab_step(self):
        return self.fused_vocab_loss != "off" and fused_step_blocker(self) is None


def _check_ebt_type(ebt_type):
    if ebt_type not in EBT_TYPES:
        raise ValueError(f"--ebt_type {ebt_type!r} is not one of {', '.join(EBT_TYPES)}")


def _square_side(image_dims):
    """--image_dims as one side: images are square."""
    if isinstance(image_dims, (list, tuple)):
        if len(set(image_dims)) != 1:
            raise ValueError(f"--image_dims {' '.join(map(str, image_dims))}: images are square; give one side")
        return image_dims[0]
    return image_dims


@dataclass
class ImageConfig(FromHparams):
    """Image denoising: the DiT-style network, the noise level and the diffusion schedule (docs/method.md §7.1-7.4)."""
    image_dims: int = flag("image_dims")  # square side in pixels
    patch_size: int = flag("patch_size")
    embedding_dim: int = 128
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = flag("ffn_dim_multiplier")  # MLP ratio; None means 1 (the scripts pass 1)
    image_channels: int = 3  # 3 for pixels, 4 for VAE latents
    denoise_images_noise_level: float = flag("denoise_images_noise_level")  # fraction of a 1000-step DDPM schedule
    trained_noise_level: float | None = None  # the level the schedule was built for (set when training)
    randomize_denoise_images_noise_level: bool = flag("randomize_denoise_images_noise_level")
    diffusion_steps: int = flag("diffusion_steps")
    # DiT denoising at test time and the sampler of its logged images
    infer_increase_steps: int = flag("infer_increase_steps")  # start DDIM at this timestep, not the noise level's
    infer_recurse_diffusion_n_times: int = flag("infer_recurse_diffusion_n_times")
    use_deterministic_reverse: bool = flag("use_deterministic_reverse")

    def __post_init__(self):
        self.image_dims = _square_side(self.image_dims)
        if self.image_dims % self.patch_size:
            raise ValueError(f"--patch_size {self.patch_size} does not divide the image side {self.image_dims}")
        _check_heads(self.embedding_dim, self.multiheaded_attention_heads)
        if not 0 < self.denoise_images_noise_level <= 1:
            raise ValueError("--denoise_images_noise_level must be in (0, 1] (a fraction of the 1000-step schedule)")
        if self.trained_noise_level is None:
            self.trained_noise_level = self.denoise_images_noise_level
        if self.diffusion_steps < 1 or self.infer_increase_steps < 0 or self.infer_recurse_diffusion_n_times < 0:
            raise ValueError("--diffusion_steps >= 1, --infer_increase_steps >= 0 and "
                             "--infer_recurse_diffusion_n_times >= 0, please")

    @property
    def mlp_ratio(self):
        return self.ffn_dim_multiplier or 1.0


@dataclass
class ImageEBTConfig(ImageConfig, ThinkingConfig):
    """Bidirectional EBT denoiser: the image options plus the shared thinking options."""

    def __post_init__(self):
        ImageConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)


@dataclass
class TextToImageConfig(FromHparams):
    """Text-to-image: a network over frozen SD-VAE latents, conditioned on a frozen CLIP caption embedding
    (docs/method.md §7.6). The network sees latents of side image_dims / 8."""
    image_dims: int = flag("image_dims")  # square side in pixels
    patch_size: int = flag("patch_size")  # on the latent grid
    embedding_dim: int = 128
    num_transformer_blocks: int = 2
    multiheaded_attention_heads: int = 2
    ffn_dim_multiplier: float | None = flag("ffn_dim_multiplier")  # MLP ratio; None means 1
    clip_text_encoder_size: str = flag("clip_text_encoder_size")  # small/base/large/xl, a hub name or a local dir
    vae_path: str = field(default_factory=lambda: _modality_default("vae_path", "IMG"))
    use_rand_caption: bool = flag("use_rand_caption")
    diffusion_steps: int = flag("diffusion_steps")  # DiT: the whole schedule, t ~ U{0..diffusion_steps-1}
    use_deterministic_reverse: bool = flag("use_deterministic_reverse")  # DiT sampling: DDIM instead of ancestral

    def __post_init__(self):
        self.image_dims = _square_side(self.image_dims)
        if self.image_dims % 8 or self.latent_size % self.patch_size:
            raise ValueError(f"--image_task t2i works on VAE latents of side image_dims / 8: --image_dims must be a "
                             f"multiple of 8 whose eighth ({self.image_dims / 8:g}) --patch_size {self.patch_size} "
                             f"divides")
        _check_heads(self.embedding_dim, self.multiheaded_attention_heads)
        if self.diffusion_steps <= 20:  # the linear schedule's last beta is 0.02 * 1000 / diffusion_steps
            raise ValueError(f"--diffusion_steps {self.diffusion_steps}: text-to-image diffuses over the whole "
                             f"schedule, which needs more than 20 steps (the last beta is 20 / diffusion_steps)")

    @property
    def latent_size(self):
        return self.image_dims // 8

    @property
    def mlp_ratio(self):
        return self.ffn_dim_multiplier or 1.0


@dataclass
class TextToImageEBTConfig(TextToImageConfig, ThinkingConfig):
    """Text-to-image EBT: thinks from random (or zero) latents."""
    denoising_initial_condition: str = flag("denoising_initial_condition")
    gaussian_random_noise_scaling: float = flag("gaussian_random_noise_scaling")  # std of the random initial latents

    def __post_init__(self):
        TextToImageConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        if self.denoising_initial_condition not in ("random_noise", "zeros"):
            raise ValueError(f"--denoising_initial_condition {self.denoising_initial_condition}: text-to-image "
                             f"starts from random_noise or zeros")


@dataclass
class VideoConfig(TransformerConfig):
    """Next-frame prediction in a frozen encoder's feature space (docs/method.md §8): the causal trunk sees
    frame features down-projected to its width; predictions live in the feature space."""
    feature_dim: int = 3136  # the encoder's per-frame feature size (SD-VAE latents of 224x224 frames)
    weight_tie_vae_proj: bool = flag("weight_tie_vae_proj")  # Transformer++: up-projection = down-projection^T


@dataclass
class VideoEBTConfig(VideoConfig, ThinkingConfig):
    """Autoregressive EBT over frame features: the trunk options of text (ebt_type, ...) and the thinking."""
    ebt_type: str = flag("ebt_type")
    denoising_initial_condition: str = flag("denoising_initial_condition")  # or zeros, most_recent_embedding
    gaussian_random_noise_scaling: float = flag("gaussian_random_noise_scaling")
    activation_checkpointing: bool = flag("activation_checkpointing")

    def __post_init__(self):
        VideoConfig.__post_init__(self)
        ThinkingConfig.__post_init__(self)
        _check_ebt_type(self.ebt_type)
        if self.denoising_initial_condition not in ("random_noise", "zeros", "most_recent_embedding"):
            raise ValueError("--denoising_initial_condition must be random_noise, zeros or most_recent_embedding "
                             "for video")


@dataclass
class InferenceConfig(FromHparams):
    """System 2 thinking at test time (docs/method.md §5.1-5.3); used with --infer_ebt_advanced."""
    infer_ebt_num_steps: int = flag("infer_ebt_num_steps")
    infer_ebt_override_alpha: float = flag("infer_ebt_override_alpha")  # 0: trained; (0, 1): multiplier; >= 1: value
    infer_langevin_dynamics_noise: float = flag("infer_langevin_dynamics_noise")  # 0: the trained noise std
    infer_langevin_first_step: bool = flag("infer_langevin_first_step")
    infer_generated_samples: int = flag("infer_generated_samples")
    infer_energy_sampling_technique: str = flag("infer_energy_sampling_technique")
    infer_accept_lower_energies: bool = flag("infer_accept_lower_energies")
    infer_steps_final_landscape: bool = flag("infer_steps_final_landscape")
    infer_alpha_final_landscape: bool = flag("infer_alpha_final_landscape")

    def __post_init__(self):
        if self.infer_ebt_num_steps < 1 or self.infer_generated_samples < 1:
            raise ValueError("--infer_ebt_num_steps and --infer_generated_samples must be at least 1")
        if self.infer_ebt_override_alpha < 0:
            raise ValueError("--infer_ebt_override_alpha must be >= 0")
        if self.infer_langevin_dynamics_noise < 0:
            raise ValueError("--infer_langevin_dynamics_noise is a standard deviation: use a value >= 0")
        if self.infer_energy_sampling_technique not in ("min", "max", "max_gap"):
            raise ValueError("--infer_energy_sampling_technique must be min, max or max_gap")


# The config of each (modality, image task, model): what that model reads.
CONFIGS = {("NLP", "ebt"): EBTConfig, ("NLP", "baseline_transformer"): TransformerConfig,
           ("IMG", "ebt"): ImageEBTConfig, ("IMG", "dit"): ImageConfig,
           ("IMG-t2i", "ebt"): TextToImageEBTConfig, ("IMG-t2i", "dit"): TextToImageConfig,
           ("VID", "ebt"): VideoEBTConfig, ("VID", "baseline_transformer"): VideoConfig}


def model_key(hp):
    """(task, model name) of the model the hyperparameters choose: the key of CONFIGS and model.registry.MODELS."""
    modality, model_name = _get(hp, "modality"), _get(hp, "model_name")
    return "IMG-t2i" if modality == "IMG" and _get(hp, "image_task") == "t2i" else modality, model_name


def config_class(hp):
    """The config class of the model that the hyperparameters choose; ValueError for a model that does not exist."""
    key = model_key(hp)
    modality, model_name = _get(hp, "modality"), key[1]
    if key not in CONFIGS:
        models = sorted(name for (task, name) in CONFIGS if task == key[0])
        raise ValueError(f"--modality {modality} has no model {model_name}: use --model_name {' or '.join(models)}")
    return CONFIGS[key]
