"""Command line of train_model.py: the published flag names, grouped, each with help.

Every default is the published code's (so a published job script means the same run here), except the
few listed in README.md's differences; the offline CPU quickstart is a recipe of its own,
job_scripts/quickstart.sh. Each flag's default lives here, in its definition; the model configs
(model/config.py) take theirs from it and hold the checks of model options, which `validate` runs by
building the chosen model's config. Unknown flags, impossible combinations and written flags the chosen
modality and model do not read stop the run before any work, with one line that says what to change.
"""
import argparse
import functools
import json
import os
import sys
from dataclasses import fields

from data.names import IMAGE_ALIASES as DATASET_ALIASES
from data.names import IMAGE_DATASETS, NLP_DATASETS, VIDEO_ALIASES, VIDEO_DATASETS, is_downstream
from utils.optimization import OPTIMIZERS
from utils.usage import UsageError, output_path_problem
from model.config import (CONFIGS, EBT_TYPES, FUSED_VOCAB_LOSS_CHOICES, IMAGE_MODEL_SIZES, MODEL_SIZES,
                          SUGGESTED_PEAK_LR, InferenceConfig, config_class)

# Defaults that depend on --modality, resolved here when the flag is not written. The published
# --dataset_name default is ucf101 whatever the modality; text and image runs get their paper data set.
MODALITY_DEFAULTS = {
    "dataset_name": {"NLP": "pajama", "IMG": "coco_medium", "VID": "ucf101"},
    "vae_path": {"NLP": None, "IMG": "stabilityai/sd-vae-ft-ema", "VID": "stabilityai/sd-vae-ft-mse"},
}

# Flags outside the model configs that only some runs read: flag -> (modalities, model names or None = all).
# A model config's fields (model/config.py) are the options that model reads.
_ALL = ("NLP", "IMG", "VID")
RUN_FLAGS = {
    **{name: (("NLP",), None) for name in ("tokenizer", "pretokenize_dataset", "infer_temp", "infer_topp",
                                           "infer_topk", "infer_echo", "infer_output_dir")},
    "infer_compile_decoding": (("NLP",), ("ebt",)),
    "infer_max_gen_len": (("NLP", "VID"), None),
    "image_task": (("IMG",), None),
    "log_image_every_n_steps": (("IMG", "VID"), None),
    **{name: (("VID",), None) for name in ("backbone_type", "vit_backbone_size", "pixel_pooling",
                                           "sdxl_vae_standardization", "vae_normalization",
                                           "custom_image_normalization", "time_between_frames", "sampling_rate",
                                           "use_raw_framerate", "no_randomness_dataloader", "latents_dir",
                                           "infer_video_condition_frames", "infer_generate_video", "image_dims",
                                           "vae_path")},
    "mcmc_step_size_lr_multiplier": (_ALL, ("ebt",)),
    **{f.name: (_ALL, ("ebt",)) for f in fields(InferenceConfig)},
    "infer_ebt_advanced": (_ALL, ("ebt",)),
    "infer_plot_energy_landscape": (_ALL, ("ebt",)),
}
# Config fields every run reads whatever its model (the batch size sizes the data loader).
_READ_BY_EVERY_RUN = {"batch_size_per_device"}


def boolean_value(text):
    """A flag's written truth value, as the published scripts write it (True/False, also 1/0, yes/no)."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not True or False")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"train_model.py: error: {message} (python train_model.py --help lists every flag)")


def build_parser():
    p = Parser(description="Train an Energy-Based Transformer or a Transformer++ baseline.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    g = p.add_argument_group("core")
    g.add_argument("--run_name", default="test", help="name of the run; logs go to <log_dir>/<run_name>/<time>/")
    g.add_argument("--modality", default="VID", choices=["NLP", "IMG", "VID"], help="data modality")
    g.add_argument("--model_name", default="ebt", choices=["ebt", "baseline_transformer", "dit"],
                   help="ebt = Energy-Based Transformer; baseline_transformer = Transformer++ (Llama-style)")
    g.add_argument("--model_size", default="xxs", choices=list(MODEL_SIZES) + list(IMAGE_MODEL_SIZES),
                   metavar="{" + ",".join(MODEL_SIZES) + ",EBT-S/2,...,DiT-XL/16}",
                   help="preset (layers, heads, width) of docs/method.md §10.1, or an image preset in DiT's naming "
                        "(EBT|DiT)-(S|B|L|XL)/(2|4|8|16) that also sets --patch_size; --override_* flags win over it. "
                        "Published peak lr per size: " + ", ".join(f"{k} {v}" for k, v in SUGGESTED_PEAK_LR.items()))
    g.add_argument("--seed", type=int, default=33, help="seed of initialisation, data split/order and thinking noise")
    g.add_argument("--is_random_seed", action="store_true", help="draw a random seed instead of --seed")

    g = p.add_argument_group("NLP")
    g.add_argument("--tokenizer", default="EleutherAI/gpt-neox-20b",
                   help="byte (built in, 258 ids), neox (bundled GPT-NeoX-20B file), a Hugging Face name "
                        "such as EleutherAI/gpt-neox-20b, or a local tokenizer.json / directory")
    g.add_argument("--pretokenize_dataset", action="store_true",
                   help="pajama/fineweb: tokenize once and cache the result on disk")
    g.add_argument("--normalize_initial_condition", action=argparse.BooleanOptionalAction, default=False,
                   help="softmax the predicted logits before the energy (the paper's setting)")
    g.add_argument("--vocab_to_embed_uses_prob_dist", action="store_true",
                   help="embed predictions as probs @ token embeddings (tied) instead of a V x D matrix")

    g = p.add_argument_group("images (--modality IMG)")
    g.add_argument("--image_task", default="t2i", choices=["denoising", "t2i"],
                   help="denoising: clean images from noisy ones (the paper's image experiments); t2i: text-to-image "
                        "on VAE latents conditioned on a CLIP caption embedding (coco_tiny / coco_medium)")
    g.add_argument("--clip_text_encoder_size", default="base",
                   help="t2i: frozen CLIP text encoder: small | base | large | xl (docs/method.md §7.6), a hub name or "
                        "a local directory")
    g.add_argument("--vae_path", default=None,
                   help="frozen diffusers AutoencoderKL (t2i, and video with --backbone_type vae): a hub name or a "
                        "local directory; default: the published stabilityai/sd-vae-ft-ema (t2i) / -ft-mse (video)")
    g.add_argument("--use_rand_caption", action="store_true",
                   help="t2i on coco_medium: a random caption of each image instead of the first")
    g.add_argument("--image_dims", type=int, nargs="+", default=[224, 224], metavar="SIDE",
                   help="frame / image size: H W, or one side for a square (images must be square); frames are "
                        "centre-cropped and resized to it")
    g.add_argument("--patch_size", type=int, default=8, choices=[2, 4, 8, 16], help="side of a patch token")
    g.add_argument("--denoise_images_noise_level", type=float, default=1.0,
                   help="noise level L: noise to the point a fraction L of the way through a 1000-step linear DDPM "
                        "schedule (0.1: std ~0.32). At test time, a different L tests unseen noise")
    g.add_argument("--randomize_denoise_images_noise_level", action="store_true",
                   help="train on t ~ U{0..diffusion_steps-1} instead of the noise level's t")
    g.add_argument("--diffusion_steps", type=int, default=1000,
                   help="steps up to the noise level; the schedule has diffusion_steps / L steps in all")
    g.add_argument("--use_deterministic_reverse", action="store_true",
                   help="DiT: DDIM (eta 0) instead of ancestral sampling for the images logged while training")
    g.add_argument("--infer_increase_steps", type=int, default=0,
                   help="DiT at test time: start DDIM from this timestep instead of the noise level's")
    g.add_argument("--infer_recurse_diffusion_n_times", type=int, default=0,
                   help="DiT at test time: rerun DDIM from t on its own output this many more times")
    g.add_argument("--log_image_every_n_steps", type=int, default=500,
                   help="save a noisy / denoised / clean grid to <run>/images every N training steps and every N test "
                        "batches (0: never)")

    g = p.add_argument_group("video (--modality VID)")
    g.add_argument("--backbone_type", default="dinov2", choices=["pixels", "vae", "dinov2"],
                   help="frozen frame encoder whose space the models predict in: dinov2 (CLS feature), vae "
                        "(SD-VAE latents), pixels (no network: the offline recipes')")
    g.add_argument("--vit_backbone_size", default="base", choices=["small", "base", "large", "giant"],
                   help="DINOv2 size for --backbone_type dinov2")
    g.add_argument("--pixel_pooling", type=int, default=1,
                   help="--backbone_type pixels: average-pool frames by this factor before flattening")
    g.add_argument("--sdxl_vae_standardization", action="store_true", help="scale VAE latents by 0.18215")
    g.add_argument("--vae_normalization", action="store_true", help="frames in [-1, 1] (the VAE's range)")
    g.add_argument("--custom_image_normalization", action="store_true",
                   help="ImageNet normalisation, then the per-dataset one of the published code")
    g.add_argument("--time_between_frames", type=float, default=1.0,
                   help="seconds between sampled frames (the paper: 0.25)")
    g.add_argument("--sampling_rate", type=float, default=0.0,
                   help="if non-zero: frames this many source frames apart instead of --time_between_frames")
    g.add_argument("--use_raw_framerate", action="store_true", help="consecutive source frames")
    g.add_argument("--no_randomness_dataloader", action="store_true",
                   help="clips start at the beginning of each video (no random start)")
    g.add_argument("--latents_dir", default="",
                   help="train and evaluate on latents pre-encoded by utils/pre_encode_videos.py (its <split>/ "
                        "folders) instead of decoding videos and running the encoder every step")
    g.add_argument("--weight_tie_vae_proj", action="store_true",
                   help="Transformer++: the up-projection is the down-projection transposed")
    g.add_argument("--infer_video_condition_frames", type=int, default=3,
                   help="evaluation rollouts: real frames given before the model predicts the rest")
    g.add_argument("--infer_generate_video", action="store_true",
                   help="evaluation: roll out --infer_max_gen_len frames from --infer_video_condition_frames real "
                        "ones, report per-frame errors and save real-vs-predicted strips (PNG, GIF); FVD is not "
                        "computed")

    g = p.add_argument_group("EBT thinking (System 1)")
    g.add_argument("--ebt_type", default="default", choices=EBT_TYPES,
                   help="how the energy landscape index enters the transformer (docs/method.md §3.4)")
    g.add_argument("--mcmc_num_steps", type=int, default=2, help="thinking steps = energy landscapes")
    g.add_argument("--mcmc_step_size", type=float, default=60.0, help="step size alpha of the gradient update")
    g.add_argument("--mcmc_step_size_learnable", action=argparse.BooleanOptionalAction, default=False,
                   help="learn alpha (in its own optimizer group)")
    g.add_argument("--mcmc_step_size_lr_multiplier", type=float, default=5000.0,
                   help="alpha's learning rate = peak lr x this (rule of thumb: 3 x alpha)")
    g.add_argument("--denoising_initial_condition", default="random_noise",
                   choices=["random_noise", "zeros", "most_recent_embedding"],
                   help="initial guess of the prediction (logits, or video features); most_recent_embedding (video): "
                        "a copy of the latest frame's features")
    g.add_argument("--gaussian_random_noise_scaling", type=float, default=1.0,
                   help="std of the random initial guess")
    g.add_argument("--activation_checkpointing", action="store_true",
                   help="EBT training: recompute each thinking step's energy gradient in the backward pass "
                        "instead of keeping its second-order graph from the forward (about half the step's "
                        "working memory for about 15%% more time: README, 'Speed and memory')")
    g.add_argument("--ebt_attention", default="fast", choices=["fast", "reference"],
                   help="fast = observed stream cached across steps; reference = one masked attention "
                        "over [observed; predictions] every step (slow, for checking)")
    g.add_argument("--fused_vocab_loss", default="auto", choices=FUSED_VOCAB_LOSS_CHOICES,
                   help="NLP: each thinking step's update and cross-entropy as one chunked operation without "
                        "(B, n, V) autograd tensors (the Transformer++: its head and loss); auto = where it applies "
                        "(not with --no_mcmc_detach, --clamp_futures_grad, --absolute_clamp), off = plain autograd")
    g.add_argument("--vocab_chunk_mb", type=float, default=None,
                   help="MB per chunked (rows, vocabulary) buffer of --fused_vocab_loss (default: 64 on CPU, "
                        "1024 on GPUs)")

    g = p.add_argument_group("EBT System 2 training (docs/method.md §4; job_scripts/nlp/pretrain/ebt_s2.sh)")
    g.add_argument("--randomize_mcmc_step_size_scale", type=float, default=1.0,
                   help="s > 1: in training, alpha ~ U[alpha/s, alpha*s] per row and position")
    g.add_argument("--randomize_mcmc_num_steps", type=int, default=0,
                   help="R > 0: in training each landscape takes U{min..R+1} steps; evaluation takes R+1 on the last")
    g.add_argument("--randomize_mcmc_num_steps_min", type=int, default=0, help="smallest random step count (0 = 1)")
    g.add_argument("--randomize_mcmc_num_steps_final_landscape", action="store_true",
                   help="randomise the step count of the last landscape only")
    g.add_argument("--langevin_dynamics_noise", type=float, default=0.0,
                   help="std of Gaussian noise added to the predicted logits before every thinking step")
    g.add_argument("--langevin_dynamics_noise_learnable", action="store_true",
                   help="learn the noise std after the LR warm-up")
    g.add_argument("--no_langevin_during_eval", action="store_true",
                   help="no Langevin noise in validation/test (the published NLP code ignored this flag)")
    g.add_argument("--no_mcmc_detach", action="store_true", help="keep the graph between thinking steps")
    g.add_argument("--truncate_mcmc", action="store_true",
                   help="second-order graph and loss on the last thinking step only")
    g.add_argument("--clamp_futures_grad", action="store_true",
                   help="clamp the energy gradient to +-clamp_futures_grad_max_change / alpha")
    g.add_argument("--clamp_futures_grad_max_change", type=float, default=9.0, help="see --clamp_futures_grad")
    g.add_argument("--clamp_max_after_warm_up", type=float, default=0.0,
                   help="!= 0: replaces clamp_futures_grad_max_change after the warm-up")
    g.add_argument("--absolute_clamp", type=float, default=0.0,
                   help="!= 0: clamp the logits to +-value after each step")
    g.add_argument("--contrastive_loss", action="store_true",
                   help="add a term ranking the true token's energy below the prediction's (\"didn't work well\")")
    g.add_argument("--contrastive_loss_coeff", type=float, default=0.0005, help="weight of --contrastive_loss")
    g.add_argument("--soften_target_prob_dist", type=float, default=0.0,
                   help="label smoothing of the first step's targets, decreasing to 0 at the last step")
    g.add_argument("--mcmc_replay_buffer", action="store_true",
                   help="replay rows: continue thinking from stored logits of earlier batches")
    g.add_argument("--mcmc_replay_buffer_size", type=int, default=192, help="records kept in the replay buffer")
    g.add_argument("--mcmc_replay_buffer_sample_bs_percent", type=float, default=0.5,
                   help="replayed rows per batch as a fraction of --batch_size_per_device")

    g = p.add_argument_group("evaluation and System 2 thinking at test time (docs/method.md §5, §11.2)")
    g.add_argument("--only_test", action="store_true",
                   help="evaluate --only_test_model_ckpt on the test split instead of training")
    g.add_argument("--only_test_model_ckpt", default=None, help="checkpoint to evaluate (its hyperparameters are used)")
    g.add_argument("--limit_test_batches", type=float, default=1.0,
                   help="a fraction (up to 1 = all) or a number of test batches (2 or more)")
    g.add_argument("--infer_ebt_advanced", action="store_true",
                   help="think with the infer_* options below instead of the training-time schedule")
    g.add_argument("--infer_ebt_num_steps", type=int, default=1,
                   help="steps per landscape (default type: total steps; 1 = as trained)")
    g.add_argument("--infer_ebt_override_alpha", type=float, default=0.0,
                   help="step size at test time: 0 = trained alpha, in (0, 1) = multiplier, >= 1 = the value")
    g.add_argument("--infer_langevin_dynamics_noise", type=float, default=0.0,
                   help="noise std at test time (0 = the trained one)")
    g.add_argument("--infer_langevin_first_step", action="store_true", help="noise on the first step only")
    g.add_argument("--infer_generated_samples", type=int, default=1,
                   help="G > 1: think G times from different random guesses, keep one per position (best-of-N)")
    g.add_argument("--infer_energy_sampling_technique", default="min", choices=["min", "max", "max_gap"],
                   help="which sample to keep per position: lowest final energy (self-verification), highest, "
                        "or largest energy drop")
    g.add_argument("--infer_accept_lower_energies", action="store_true",
                   help="keep a thinking step only where it lowers the energy")
    g.add_argument("--infer_steps_final_landscape", action="store_true",
                   help="the extra steps go to the last landscape only (earlier ones take one step)")
    g.add_argument("--infer_alpha_final_landscape", action="store_true",
                   help="the overridden alpha applies to the last landscape only")
    g.add_argument("--infer_plot_energy_landscape", action="store_true",
                   help="--only_test: also draw the thinking of the first test batch (energy per step, System 1 and, "
                        "with --infer_ebt_advanced, System 2; an energy slice with the path) into "
                        "energy_landscape.png")
    g.add_argument("--infer_max_gen_len", type=int, default=256,
                   help="--execution_mode inference: most tokens generated per answer")
    g.add_argument("--infer_temp", type=float, default=0.6, help="sampling temperature (0 = greedy)")
    g.add_argument("--infer_topp", type=float, default=0.9, help="nucleus sampling mass")
    g.add_argument("--infer_topk", type=int, default=None, help="sample among the k likeliest tokens (none: all)")
    g.add_argument("--infer_echo", type=boolean_value, nargs="?", const=True, default=False, metavar="True|False",
                   help="write the prompt in front of each generation (a bare --infer_echo means True)")
    g.add_argument("--infer_compile_decoding", action="store_true",
                   help="EBT generation: torch.compile the cached per-token thinking step (several times faster "
                        "per token; compiling takes tens of seconds once per run)")
    g.add_argument("--infer_output_dir", default="",
                   help="folder of results.jsonl (default: the run folder)")

    g = p.add_argument_group("architecture")
    g.add_argument("--context_length", type=int, default=0, help="tokens the model reads per row (C)")
    g.add_argument("--override_embedding_dim", type=int, default=0, help="width D (> 0 overrides the preset)")
    g.add_argument("--override_transformer_blocks", type=int, default=0, help="layers (> 0 overrides the preset)")
    g.add_argument("--multiheaded_attention_heads", type=int, default=0,
                   help="attention heads (> 0 overrides the preset; must divide the width)")
    g.add_argument("--ffn_dim_multiplier", type=float, default=None, help="SwiGLU hidden = D x this (default: D)")
    g.add_argument("--weight_initialization_method", default="xavier", choices=["xavier", "he"],
                   help="init of every Linear")
    g.add_argument("--weight_initialization_gain", type=float, default=1.0, help="multiplies the Linear init")

    g = p.add_argument_group("hardware")
    g.add_argument("--gpus", default="-1", help="-1 = all visible GPUs (CPU when none), N, or a JSON list of ids")
    g.add_argument("--distributed_strategy", default="ddp", choices=["ddp", "ddp_spawn", "fsdp"],
                   help="Lightning strategy when using several devices; fsdp: FSDP2, each rank keeps a shard of "
                        "the weights, gradients and optimizer state (GPUs or --num_cpu_processes)")
    g.add_argument("--num_cpu_processes", type=int, default=1,
                   help="without GPUs: DDP processes on the CPU (gloo), e.g. to try a distributed run")

    g = p.add_argument_group("training")
    g.add_argument("--execution_mode", default="pretrain", choices=["pretrain", "finetune", "inference"],
                   help="pretrain: loss on every token; finetune: on the answer tokens of a question/answer set")
    g.add_argument("--finetuning_model_ckpt", default=None, help="finetune: start from this checkpoint's weights")
    g.add_argument("--batch_size_per_device", type=int, default=2, help="rows per device per micro-batch")
    g.add_argument("--accumulate_grad_batches", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--gradient_clip_val", type=float, default=1.0, help="global grad-norm clip (<= 0: off)")
    g.add_argument("--max_steps", type=int, default=1000000, help="optimizer steps to train")
    g.add_argument("--deterministic", action="store_true", help="ask torch for deterministic kernels")

    g = p.add_argument_group("optimizer and schedule")
    g.add_argument("--peak_learning_rate", type=float, default=0.02, help="AdamW lr after warm-up")
    g.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay (not on alpha)")
    g.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="AdamW beta2")
    g.add_argument("--warm_up_steps", type=int, default=10000, help="linear warm-up steps")
    g.add_argument("--max_scheduling_steps", type=int, default=-1,
                   help="length of warm-up + cosine decay (-1: --max_steps)")
    g.add_argument("--min_lr_scale", type=float, default=10, help="each group decays to its peak / this")
    g.add_argument("--lr_scaling_rule", action="store_true",
                   help="scale the peak lr by effective batch size / 256")
    g.add_argument("--optimizer", default="adamw", choices=sorted(OPTIMIZERS), help="optimizer")

    g = p.add_argument_group("data")
    g.add_argument("--dataset_name", default=None,
                   help="text: pajama (default) | fineweb | shakespeare, bbc_news (bundled) | text (--dataset_dir) "
                        "| nlp_synthetic, or a question/answer set; images: coco_medium (default) | coco_tiny | "
                        "natural_images, mnist (bundled) | image_folder (--dataset_dir) | imagenet; video: ucf101 "
                        "(default) | moving_mnist (bundled digits) | video_folder (--dataset_dir) | k400 | something "
                        "(ssv2) | aggregate")
    g.add_argument("--dataset_dir", default="", help="local data folder (text files, or a saved/HF cache copy)")
    g.add_argument("--validation_split_pct", type=float, default=0.1, help="fraction of rows held out for validation")
    g.add_argument("--num_workers", type=int, default=4, help="data-loader workers per device")
    g.add_argument("--prefetch_factor", type=int, default=None, help="batches prefetched per worker")
    g.add_argument("--no_shuffle", action="store_true", help="train in corpus order")
    g.add_argument("--val_check_interval", type=float, default=1.0,
                   help="validate every N optimizer steps (a whole number > 1), or after this fraction of an "
                        "epoch (<= 1; 1 = at each epoch's end)")
    g.add_argument("--check_val_every_n_epoch", type=int, default=1,
                   help="validate in every N-th epoch; a step count --val_check_interval counts across epochs "
                        "unless this flag is written")
    g.add_argument("--limit_train_batches", type=float, default=1.0,
                   help="a fraction (up to 1 = all) or a number of train batches (2 or more)")
    g.add_argument("--limit_val_batches", type=float, default=1.0,
                   help="a fraction (up to 1 = all) or a number of val batches (2 or more)")
    g.add_argument("--val_sanity", type=int, default=0, help="validation batches run before training")

    g = p.add_argument_group("Weights & Biases")
    g.add_argument("--no_wandb", action="store_true", help="never use W&B (local logs only)")
    g.add_argument("--wandb_entity", default="", help="W&B entity")
    g.add_argument("--wandb_project", default="EBT", help="W&B project")
    g.add_argument("--wandb_tags", nargs="*", default=None, help="W&B tags")
    g.add_argument("--wandb_offline", action="store_true", help="W&B offline mode (sync later)")
    g.add_argument("--wandb_watch", action="store_true", help="log gradients/parameter histograms to W&B")
    g.add_argument("--wandb_watch_log_freq", type=int, default=1000, help="steps between W&B watch logs")

    g = p.add_argument_group("logging")
    g.add_argument("--log_dir", default="logs", help="root folder of runs (metrics.csv, plot, checkpoints)")
    g.add_argument("--console_log_filename", default="console.log", help="copy of the terminal in the run folder")
    g.add_argument("--log_every_n_steps", type=int, default=50, help="steps between logged training metrics")
    g.add_argument("--log_model_archi", action="store_true", help="print the model and a layer summary")
    g.add_argument("--log_gradients", action="store_true",
                   help="log the mean per-tensor gradient norm and the percent of gradient elements beyond "
                        "--gradient_clip_val")

    g = p.add_argument_group("checkpointing")
    g.add_argument("--resume_training_ckpt", default="", help="checkpoint to continue training from")
    g.add_argument("--checkpoint_monitor_string", default="valid_loss", help="metric that picks the best checkpoint")
    g.add_argument("--checkpoint_monitor_mode", default="min", choices=["min", "max"], help="best = min or max")
    g.add_argument("--save_top_k_ckpts", type=int, default=10, help="best checkpoints kept (plus last.ckpt)")

    g = p.add_argument_group("precision and speed")
    g.add_argument("--float_precision", default="32-true",
                   choices=["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true"], help="Lightning precision")
    g.add_argument("--set_matmul_precision", default=None, choices=["highest", "high", "medium"],
                   help="torch.set_float32_matmul_precision (TF32 on Ampere+)")
    g.add_argument("--compile_model", action="store_true",
                   help="torch.compile the model (Transformer++ only: compile cannot double-backward)")

    g = p.add_argument_group("slurm")
    g.add_argument("--is_slurm_run", action="store_true", help="refuse debug settings (set by job scripts under Slurm)")
    g.add_argument("--override_slurm_checks", action="store_true", help="allow debug settings under Slurm")

    g = p.add_argument_group("debugging")
    g.add_argument("--debug_mode", action="store_true",
                   help="no W&B, anomaly detection, one training batch per epoch")
    g.add_argument("--fast_dev_run", action="store_true", help="one train and one val batch, then stop")
    g.add_argument("--detect_anomaly", action="store_true", help="torch.autograd anomaly detection")
    g.add_argument("--overfit_batches", type=float, default=0.0, help="train on this many batches only")
    g.add_argument("--profiler", default=None, choices=["simple", "advanced"], help="Lightning profiler")
    g.add_argument("--find_unused_parameters", action="store_true", help="DDP find_unused_parameters")
    g.add_argument("--debug_unused_parameters", action="store_true",
                   help="after each backward, print trainable parameters that received no gradient")
    g.add_argument("--manual_gc_collect_every_n_steps", type=int, default=-1,
                   help="> 0: run Python's garbage collector every N training steps (CPU-memory leak hunting)")
    g.add_argument("--debug_dataloader", action="store_true",
                   help="iterate the training set once in one process (pre-tokenize, check the data), then stop")
    return p


def resolve_model_size(args):
    if args.model_size in IMAGE_MODEL_SIZES:
        layers, heads, dim, args.patch_size = IMAGE_MODEL_SIZES[args.model_size]
    else:
        layers, heads, dim = MODEL_SIZES[args.model_size]
    args.num_transformer_blocks = args.override_transformer_blocks or layers
    args.embedding_dim = args.override_embedding_dim or dim
    args.multiheaded_attention_heads = args.multiheaded_attention_heads or heads


def _batches(value):
    return value is None or (isinstance(value, int) and value >= 2) or 0 <= value <= 1


# The range of each numeric flag that has one, checked before anything else: flag -> (test, what to write).
VALUE_RANGES = {
    "seed": (lambda v: 0 <= v < 2**32, "a whole number in 0 .. 2**32 - 1"),
    "override_embedding_dim": (lambda v: v >= 0, ">= 0 (0: the size preset's)"),
    "override_transformer_blocks": (lambda v: v >= 0, ">= 0 (0: the size preset's)"),
    "multiheaded_attention_heads": (lambda v: v >= 0, ">= 0 (0: the size preset's)"),
    "peak_learning_rate": (lambda v: v > 0, "positive"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "num_workers": (lambda v: v >= 0, ">= 0 (0: load in the training process)"),
    "prefetch_factor": (lambda v: v is None or v >= 1, ">= 1"),
    "log_every_n_steps": (lambda v: v >= 1, ">= 1"),
    "log_image_every_n_steps": (lambda v: v >= 0, ">= 0 (0: never)"),
    "wandb_watch_log_freq": (lambda v: v >= 1, ">= 1"),
    "save_top_k_ckpts": (lambda v: v >= -1, ">= -1 (-1: keep every checkpoint)"),
    "val_sanity": (lambda v: v >= 0, ">= 0"),
    "check_val_every_n_epoch": (lambda v: v is None or v >= 1, ">= 1"),
    "val_check_interval": (lambda v: v is None or (isinstance(v, int) and v >= 2) or 0 < v <= 1,
                           "a fraction of an epoch in (0, 1] or a whole number of steps (2 or more)"),
    "limit_train_batches": (_batches, "a fraction in [0, 1] or a whole number of batches (2 or more)"),
    "limit_val_batches": (_batches, "a fraction in [0, 1] or a whole number of batches (2 or more)"),
    "limit_test_batches": (_batches, "a fraction in [0, 1] or a whole number of batches (2 or more)"),
    "overfit_batches": (_batches, "a fraction in [0, 1] or a whole number of batches (2 or more)"),
    "image_dims": (lambda v: min(v) >= 1, "positive"),
    "pixel_pooling": (lambda v: v >= 1, ">= 1 (1: no pooling)"),
    "time_between_frames": (lambda v: v > 0, "positive (seconds)"),
    "sampling_rate": (lambda v: v >= 0, ">= 0 (0: use --time_between_frames)"),
    "infer_video_condition_frames": (lambda v: v >= 1, ">= 1"),
    "clamp_futures_grad_max_change": (lambda v: v > 0, "positive"),
    "gaussian_random_noise_scaling": (lambda v: v >= 0, ">= 0"),
}


def value_out_of_range(args):
    """The first flag whose value is outside its range (VALUE_RANGES), as a message; or None."""
    for name, (in_range, wanted) in VALUE_RANGES.items():
        value = getattr(args, name, None)
        if value is not None and not in_range(value):
            shown = " ".join(map(str, value)) if isinstance(value, list) else f"{value:g}" if isinstance(
                value, float) else value
            return f"--{name} {shown}: must be {wanted}"
    return None


def validate(args):
    """Reject impossible combinations before any work; returns the first problem or None.

    A run from a checkpoint (--only_test, --finetuning_model_ckpt) is checked again once the checkpoint's
    hyperparameters (its modality, its data) are known; before that, the checks that depend on them wait.
    """
    trained_model_known = (not (args.only_test or args.finetuning_model_ckpt)
                           or getattr(args, "trained_hparams_loaded", False))
    message = value_out_of_range(args)
    if message:
        return message
    if trained_model_known:
        try:
            config_class(args)
        except ValueError as error:
            return str(error)
    if (args.modality == "NLP" and trained_model_known and args.dataset_name not in NLP_DATASETS
            and not is_downstream(args.dataset_name)):
        return (f"--dataset_name {args.dataset_name} is unknown; use shakespeare, bbc_news, text, pajama, "
                "fineweb, nlp_synthetic, or gsm8k, squad, ai2arc, bigbench_<task>, lambada, planbench")
    if args.denoising_initial_condition == "most_recent_embedding" and args.modality != "VID":
        return ("--denoising_initial_condition most_recent_embedding copies the latest frame: a video option; use "
                "random_noise or zeros")
    if args.modality == "IMG" and trained_model_known:
        message = validate_image_args(args)
        if message:
            return message
    if args.modality == "VID" and trained_model_known:
        message = validate_video_args(args)
        if message:
            return message
    if args.num_cpu_processes < 1:
        return "--num_cpu_processes must be at least 1"
    if not gpus_well_formed(args.gpus):
        return f"--gpus {args.gpus}: write -1 (all visible), a count such as 2, or a JSON list of ids such as [0,1]"
    if args.batch_size_per_device < 1 or args.accumulate_grad_batches < 1:
        return "--batch_size_per_device and --accumulate_grad_batches must be at least 1"
    if not 0 < args.validation_split_pct < 1:
        return "--validation_split_pct is a fraction in (0, 1), e.g. 0.1"
    if args.max_steps < 1:
        return "--max_steps must be at least 1"
    if args.warm_up_steps < 0 or args.max_scheduling_steps < args.warm_up_steps:
        return "--max_scheduling_steps must be at least --warm_up_steps"
    if args.min_lr_scale < 1:
        return "--min_lr_scale must be >= 1 (the floor is peak / min_lr_scale)"
    if args.infer_plot_energy_landscape and not args.only_test:
        return ("--infer_plot_energy_landscape draws a test run's thinking: use it with --only_test, or run "
                "inference/plot_energy_landscape.py on a checkpoint")
    if args.infer_plot_energy_landscape and args.execution_mode == "inference":
        return "--infer_plot_energy_landscape draws perplexity test runs, not --execution_mode inference (generation)"
    if args.infer_plot_energy_landscape and args.modality == "IMG" and args.image_task == "t2i":
        return "--infer_plot_energy_landscape draws the text, image-denoising and video EBTs, not text-to-image"
    if args.distributed_strategy == "fsdp":
        if args.compile_model:
            return "--compile_model cannot be combined with --distributed_strategy fsdp here; drop one of them"
        if args.find_unused_parameters:
            return "--find_unused_parameters is a DDP setting; drop it with --distributed_strategy fsdp"
        if args.float_precision not in ("32-true", "bf16-mixed", "bf16-true", "16-true"):
            return (f"--distributed_strategy fsdp runs in 32-true, bf16-mixed, bf16-true or 16-true precision, not "
                    f"--float_precision {args.float_precision}")
    if args.compile_model and args.model_name == "ebt":
        return "--compile_model cannot be used with the EBT: torch.compile cannot double-backward; drop the flag"
    message = validate_files(args)
    if message:
        return message
    if args.execution_mode == "inference" and not args.only_test:
        return "--execution_mode inference evaluates a checkpoint: add --only_test --only_test_model_ckpt CKPT"
    if (args.modality == "NLP" and args.execution_mode == "inference" and trained_model_known
            and not is_downstream(args.dataset_name)):
        return ("--execution_mode inference generates answers: use it with --only_test --only_test_model_ckpt CKPT "
                "and a question/answer set (gsm8k, squad, ai2arc, bigbench_<task>, lambada, planbench)")
    if (args.infer_max_gen_len < 1 or args.infer_temp < 0 or not 0 < args.infer_topp <= 1
            or (args.infer_topk is not None and args.infer_topk < 0)):
        return "--infer_max_gen_len >= 1, --infer_temp >= 0, 0 < --infer_topp <= 1 and --infer_topk >= 0, please"
    if args.execution_mode == "finetune" and args.modality != "NLP" and trained_model_known:
        return "--execution_mode finetune is for question/answer text sets"
    if args.execution_mode == "finetune" and not is_downstream(args.dataset_name):
        return ("--execution_mode finetune trains on answers: use a question/answer set (gsm8k, squad, ai2arc, "
                "bigbench_<task>, lambada, planbench)")
    if args.mcmc_replay_buffer and args.modality == "NLP" and is_downstream(args.dataset_name) and not args.only_test:
        return ("--mcmc_replay_buffer replays whole rows of a text corpus; question/answer rows (--dataset_name "
                f"{args.dataset_name}) carry a loss mask and are never replayed: drop the flag")
    if args.finetuning_model_ckpt and (args.execution_mode != "finetune" or args.resume_training_ckpt):
        return "--finetuning_model_ckpt needs --execution_mode finetune and no --resume_training_ckpt"
    if args.is_slurm_run and not args.override_slurm_checks:
        debug = [f for f in ("debug_mode", "detect_anomaly", "fast_dev_run", "find_unused_parameters",
                             "debug_unused_parameters")
                 if getattr(args, f)] + [f for f in ("limit_train_batches", "limit_val_batches")
                                         if getattr(args, f) == 1 and isinstance(getattr(args, f), int)]
        if debug:
            return f"debug settings {debug} in a Slurm run; remove them or pass --override_slurm_checks"
    if trained_model_known:  # the model options' own checks (model/config.py)
        try:
            config_class(args).from_hparams(args)
            if args.model_name == "ebt":
                InferenceConfig.from_hparams(args)
        except ValueError as error:
            return str(error)
    return None


# Data sets that come with the installed packages: they read no --dataset_dir.
BUNDLED_DATASETS = {"shakespeare", "bbc_news", "nlp_synthetic", "natural_images", "mnist", "moving_mnist"}
FOLDER_DATASET = {"NLP": "text", "IMG": "image_folder", "VID": "video_folder"}


def validate_files(args):
    """The data folder and checkpoints the flags name exist, or the problem."""
    if args.dataset_name in BUNDLED_DATASETS and args.dataset_dir:
        folder = FOLDER_DATASET.get(args.modality, "text")
        return (f"--dataset_name {args.dataset_name} is bundled and reads no --dataset_dir; drop --dataset_dir, or "
                f"use --dataset_name {folder} for a folder of your own")
    if args.dataset_name == "text" and not args.dataset_dir:
        return "--dataset_name text needs --dataset_dir pointing at a folder of .txt files"
    if args.dataset_dir and not os.path.exists(args.dataset_dir) and args.dataset_name not in ("pajama", "fineweb"):
        return f"--dataset_dir {args.dataset_dir} does not exist"
    if args.only_test and not args.only_test_model_ckpt:
        return "--only_test needs --only_test_model_ckpt path/to/checkpoint.ckpt"
    for flag in ("only_test_model_ckpt", "finetuning_model_ckpt", "resume_training_ckpt"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            return f"--{flag} {path}: no such file"
    return output_path_problem("--log_dir", args.log_dir)  # the run folder is made after the model is built


def gpus_well_formed(gpus):
    """--gpus is -1, a count, or a JSON list of device ids."""
    if gpus.lstrip("-").isdigit():
        return int(gpus) >= -1
    try:
        ids = json.loads(gpus)
    except ValueError:
        return False
    return isinstance(ids, list) and bool(ids) and all(isinstance(i, int) and i >= 0 for i in ids)


def validate_image_args(args):
    """Image-specific impossible combinations, or None (the model's own checks are its config's)."""
    if DATASET_ALIASES.get(args.dataset_name, args.dataset_name) not in IMAGE_DATASETS:
        return (f"--dataset_name {args.dataset_name} is not an image dataset; use one of {', '.join(IMAGE_DATASETS)}")
    if args.dataset_name == "image_folder" and not args.dataset_dir:
        return "--dataset_name image_folder needs --dataset_dir pointing at a folder of images"
    if args.image_task == "t2i" and args.dataset_name not in ("coco_tiny", "coco_medium"):
        return "--image_task t2i needs captions: use --dataset_name coco_tiny or coco_medium"
    return None


def validate_video_args(args):
    """Video-specific impossible combinations, or None."""
    if VIDEO_ALIASES.get(args.dataset_name, args.dataset_name) not in VIDEO_DATASETS:
        return f"--dataset_name {args.dataset_name} is not a video dataset; use one of {', '.join(VIDEO_DATASETS)}"
    if args.dataset_name == "video_folder" and not args.dataset_dir and not args.latents_dir:
        return "--dataset_name video_folder needs --dataset_dir pointing at a folder of videos"
    if args.latents_dir and not os.path.isdir(args.latents_dir):
        return (f"--latents_dir {args.latents_dir} does not exist; make it with python utils/pre_encode_videos.py "
                "(once per split)")
    if args.backbone_type == "vae" and (args.image_dims[0] % 8 or args.image_dims[1] % 8):
        return "--backbone_type vae needs --image_dims divisible by 8 (the VAE downsamples by 8)"
    if args.backbone_type == "pixels" and (args.image_dims[0] % args.pixel_pooling
                                           or args.image_dims[1] % args.pixel_pooling):
        return (f"--pixel_pooling {args.pixel_pooling} must divide --image_dims {args.image_dims[0]} "
                f"{args.image_dims[1]}")
    if args.vae_normalization and args.custom_image_normalization:
        return "choose one of --vae_normalization and --custom_image_normalization"
    frames = args.context_length + 1
    if args.infer_generate_video and not (0 < args.infer_video_condition_frames < args.infer_max_gen_len <= frames):
        return (f"video rollouts need 0 < --infer_video_condition_frames ({args.infer_video_condition_frames}) < "
                f"--infer_max_gen_len ({args.infer_max_gen_len}) <= frames per clip (--context_length + 1 = {frames})")
    if args.infer_generate_video and not args.only_test:
        return "--infer_generate_video evaluates a checkpoint: add --only_test --only_test_model_ckpt CKPT"
    return None


def _model_description(hp):
    task = " --image_task t2i" if hp.modality == "IMG" and hp.image_task == "t2i" else ""
    return f"--modality {hp.modality}{task} --model_name {hp.model_name}"


def flag_readers(name):
    """Where a flag is read: 'NLP ebt, VID ebt', or None for a flag every run reads."""
    readers = [f"{task.replace('-t2i', ' t2i')} {model}" for (task, model), cls in CONFIGS.items()
               if name in {f.name for f in fields(cls)}]
    if name in RUN_FLAGS:
        modalities, models = RUN_FLAGS[name]
        readers += [f"{m} {model}" for m in modalities for model in (models or ("models",))]
    return ", ".join(dict.fromkeys(readers)) or None


def unused_flag(hp, written):
    """The first written flag that the chosen modality and model do not read, as a message; or None."""
    used = {f.name for f in fields(config_class(hp))}
    used |= {name for name, (modalities, models) in RUN_FLAGS.items()
             if hp.modality in modalities and (models is None or hp.model_name in models)}
    for name in sorted(written - used - _READ_BY_EVERY_RUN):
        readers = flag_readers(name)
        if readers:
            return f"--{name} is not read by {_model_description(hp)} (only by {readers}); drop it"
    return None


# What may differ from the checkpoint when evaluating it; everything else is the trained model's.
TEST_TIME_FLAGS = {
    "run_name", "seed", "is_random_seed", "gpus", "distributed_strategy", "batch_size_per_device", "num_workers",
    "prefetch_factor", "num_cpu_processes", "dataset_name", "dataset_dir", "validation_split_pct",
    "pretokenize_dataset",
    "limit_test_batches", "log_dir", "console_log_filename", "log_every_n_steps", "log_model_archi", "no_wandb",
    "wandb_entity", "wandb_project", "wandb_tags", "wandb_offline", "float_precision", "set_matmul_precision",
    "only_test", "only_test_model_ckpt", "ebt_attention", "fused_vocab_loss", "vocab_chunk_mb",
    "no_langevin_during_eval", "is_slurm_run",
    "override_slurm_checks", "debug_mode", "fast_dev_run", "detect_anomaly", "profiler", "execution_mode",
    "denoise_images_noise_level", "log_image_every_n_steps",  # testing at an unseen noise level
    "latents_dir", "time_between_frames", "sampling_rate", "use_raw_framerate", "no_randomness_dataloader",
}
# Settings of the training run's schedule and bookkeeping: a test run cannot use them, and the published
# inference scripts repeat them from their pretraining scripts. Written at test time, they are ignored.
SCHEDULE_FLAGS = {
    "peak_learning_rate", "weight_decay", "beta1", "beta2", "warm_up_steps", "max_scheduling_steps", "min_lr_scale",
    "lr_scaling_rule", "optimizer", "mcmc_step_size_lr_multiplier", "max_steps", "accumulate_grad_batches",
    "gradient_clip_val", "deterministic", "no_shuffle", "val_check_interval", "check_val_every_n_epoch",
    "limit_train_batches", "limit_val_batches", "val_sanity", "overfit_batches", "save_top_k_ckpts",
    "checkpoint_monitor_string", "checkpoint_monitor_mode", "log_gradients", "wandb_watch", "wandb_watch_log_freq",
    "manual_gc_collect_every_n_steps", "find_unused_parameters", "debug_unused_parameters", "resume_training_ckpt",
}


def passed_flags(argv):
    """Names of the flags written on the command line (--no-x counts as x)."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
            names.add(name[3:] if name.startswith("no-") else name)
    return names


def inherit_checkpoint_hparams(args, argv, trained, finetune=False):
    """Hyperparameters for a run that starts from a checkpoint: the trained ones, plus what was written.

    Evaluation (--only_test): the command line sets the test run, the checkpoint the model. Test-time flags
    (data, batch size, devices, logging) and infer_* flags take the command line's value when written;
    written training-schedule flags (SCHEDULE_FLAGS) cannot affect a test and are ignored with a note; a
    written flag that would change the trained model stops the run (UsageError).
    Finetuning (--finetuning_model_ckpt): every written flag wins; the rest is the trained recipe.
    Flags the checkpoint does not know (added since) take the command line's value.
    """
    current = vars(args)
    written = passed_flags(argv)
    message = unused_flag(argparse.Namespace(**{"image_task": "denoising", **trained}), written)
    if message:
        raise UsageError(f"train_model.py: error: {message}")
    hp = dict(trained)
    if not finetune:
        ignored = sorted(name for name in written & SCHEDULE_FLAGS if current.get(name) != trained.get(name))
        if ignored:
            print("note: a test run ignores the training schedule's " + ", ".join(f"--{n}" for n in ignored)
                  + " (the checkpoint's model is evaluated as trained)")
        for name in sorted(written - TEST_TIME_FLAGS - SCHEDULE_FLAGS):
            if name.startswith("infer_") or name not in trained or name not in current:
                continue
            if current[name] != trained[name]:
                raise UsageError(f"train_model.py: error: --{name} cannot change at test time (the checkpoint "
                                 f"has {trained[name]!r}); drop it from the command")
    for name, value in current.items():
        overridable = finetune or name in TEST_TIME_FLAGS or name.startswith("infer_")
        if name not in trained or (overridable and name in written) or (name.startswith("infer_") and not finetune):
            hp[name] = value
    hp["only_test"], hp["only_test_model_ckpt"] = args.only_test, args.only_test_model_ckpt
    if finetune:
        hp["finetuning_model_ckpt"], hp["execution_mode"] = args.finetuning_model_ckpt, args.execution_mode
    else:
        hp["finetuning_model_ckpt"] = None  # evaluation loads the checkpoint itself
    hp = argparse.Namespace(**hp)
    hp.trained_hparams_loaded = True
    message = validate(hp)
    if message:
        raise UsageError(f"train_model.py: error: {message}")
    del hp.trained_hparams_loaded  # not a hyperparameter: keep it out of the checkpoint it writes
    return hp


# What a resumed run must share with its checkpoint besides the model's options: the schedule it continues.
RESUME_SCHEDULE_FLAGS = ("peak_learning_rate", "warm_up_steps", "max_scheduling_steps", "min_lr_scale",
                         "mcmc_step_size_lr_multiplier", "batch_size_per_device", "accumulate_grad_batches")


def resume_mismatch(args, trained, global_step):
    """Why a run cannot resume from a checkpoint with hyperparameters `trained` at optimizer step `global_step`
    (another task, model, size or schedule; nothing left to train), or None."""
    for name in ("modality", "image_task", "model_name"):
        if trained.get(name) != getattr(args, name) and (name != "image_task" or args.modality == "IMG"):
            return (f"it is a --{name} {trained.get(name)} checkpoint and this run has --{name} "
                    f"{getattr(args, name)}; resume with the checkpoint's settings")
    read = {f.name for f in fields(config_class(args))} | {"embedding_dim", "num_transformer_blocks"}
    read = (read - TEST_TIME_FLAGS - {"activation_checkpointing"}) | set(RESUME_SCHEDULE_FLAGS)  # not switches
    for name in sorted(read & trained.keys()):
        current = getattr(args, name, None)
        if current is None or current == trained[name]:
            continue
        if name == "max_scheduling_steps":
            return (f"its schedule is {trained[name]} steps long and this run's {current} (the length follows "
                    f"--max_steps unless written); pass --max_scheduling_steps {trained[name]} to continue it")
        return (f"it was trained with {name} {trained[name]!r}, this run has {current!r}; a resumed run "
                f"continues the same model and schedule (start a new run, or --finetuning_model_ckpt)")
    if global_step >= args.max_steps:
        return (f"the checkpoint is at step {global_step} and --max_steps is {args.max_steps}: nothing left to "
                f"train; raise --max_steps")
    return None


@functools.cache
def _parser_defaults():
    return vars(build_parser().parse_args([]))


def flag_defaults():
    """Every flag's default, as a fresh dict: the hyperparameters of a run that writes no flag."""
    return {name: flag_default(name) for name in _parser_defaults()}


def flag_default(name):
    """The default of flag `name` as defined here (a fresh copy of a list default)."""
    value = _parser_defaults()[name]
    return list(value) if isinstance(value, list) else value


def resolve_defaults(args, written):
    """The defaults that depend on other flags, in one place: per-modality ones, and the validation cadence.

    An integer --val_check_interval counts optimizer steps across epochs (as on a corpus larger than the
    interval) unless --check_val_every_n_epoch is written.
    """
    for name, per_modality in MODALITY_DEFAULTS.items():
        if name not in written:
            setattr(args, name, per_modality[args.modality])
    if args.max_scheduling_steps == -1:
        args.max_scheduling_steps = args.max_steps
    if args.debug_mode:
        args.no_wandb, args.detect_anomaly, args.limit_train_batches = True, True, 1
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches",
                 "val_check_interval"):
        value = getattr(args, name)
        if value is not None and value > 1 and float(value).is_integer():
            setattr(args, name, int(value))  # Lightning reads ints as counts, floats as fractions
    if args.val_check_interval == 1.0:
        args.val_check_interval = None  # at the end of each epoch
    elif isinstance(args.val_check_interval, int) and "check_val_every_n_epoch" not in written:
        args.check_val_every_n_epoch = None


def parse_args(argv=None):
    """Parse, resolve presets and derived values, validate. Raises UsageError with one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    written = passed_flags(argv)
    if len(args.image_dims) == 1:
        args.image_dims = args.image_dims * 2  # one side: a square
    if len(args.image_dims) != 2:
        parser.error(f"--image_dims takes H W or one side, not {len(args.image_dims)} numbers")
    resolve_defaults(args, written)
    resolve_model_size(args)
    from_checkpoint = args.only_test or args.finetuning_model_ckpt  # checked again with the checkpoint's model
    message = validate(args) or (None if from_checkpoint else unused_flag(args, written))
    if message and not argv:  # the published defaults alone: a video run on UCF-101
        message += ("; with no flags this is the published default run (video, ucf101); "
                    "bash job_scripts/quickstart.sh runs the offline CPU quickstart")
    if message:
        parser.error(message)
    return args
