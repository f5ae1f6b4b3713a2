"""One source of truth for options: the published defaults, config defaults from the flags, the job scripts
through the command-line and checkpoint checks, and the value forms the published scripts write."""
import glob
import os
from dataclasses import MISSING, fields

import pytest
from job_script_argv import ROOT, job_script_argv, quickstart_argv

from model.config import CONFIGS, InferenceConfig
from utils.cli import MODALITY_DEFAULTS, build_parser, flag_default, inherit_checkpoint_hparams, parse_args

# The published train_model.py defaults (argparse) of every flag this codebase shares with it.
PUBLISHED_DEFAULTS = {
    "run_name": "test", "modality": "VID", "model_name": "ebt", "model_size": "xxs",
    "vit_backbone_size": "base", "backbone_type": "dinov2", "time_between_frames": 1.0, "sampling_rate": 0.0,
    "use_raw_framerate": False, "vae_normalization": False, "sdxl_vae_standardization": False,
    "weight_tie_vae_proj": False,
    "tokenizer": "EleutherAI/gpt-neox-20b", "pretokenize_dataset": False, "normalize_initial_condition": False,
    "vocab_to_embed_uses_prob_dist": False, "soften_target_prob_dist": 0.0,
    "image_task": "t2i", "denoise_images_noise_level": 1, "randomize_denoise_images_noise_level": False,
    "clip_text_encoder_size": "base", "patch_size": 8, "log_image_every_n_steps": 500,
    "langevin_dynamics_noise": 0.0, "langevin_dynamics_noise_learnable": False, "no_langevin_during_eval": False,
    "mcmc_step_size": 60.0, "mcmc_step_size_learnable": False, "mcmc_step_size_lr_multiplier": 5000.0,
    "randomize_mcmc_step_size_scale": 1, "mcmc_num_steps": 2, "randomize_mcmc_num_steps": 0,
    "randomize_mcmc_num_steps_final_landscape": False, "randomize_mcmc_num_steps_min": 0,
    "denoising_initial_condition": "random_noise", "gaussian_random_noise_scaling": 1, "clamp_futures_grad": False,
    "clamp_futures_grad_max_change": 9.0, "absolute_clamp": 0.0, "clamp_max_after_warm_up": 0.0,
    "ebt_type": "default", "truncate_mcmc": False, "mcmc_replay_buffer": False,
    "mcmc_replay_buffer_sample_bs_percent": 0.5, "mcmc_replay_buffer_size": 192, "no_mcmc_detach": False,
    "contrastive_loss": False, "contrastive_loss_coeff": 0.0005,
    "diffusion_steps": 1000, "use_deterministic_reverse": False, "infer_increase_steps": 0,
    "infer_recurse_diffusion_n_times": 0,
    "context_length": 0, "multiheaded_attention_heads": 2, "ffn_dim_multiplier": None, "override_embedding_dim": 0,
    "override_transformer_blocks": 0, "weight_initialization_method": "xavier", "weight_initialization_gain": 1.0,
    "gpus": "-1", "distributed_strategy": "ddp",
    "peak_learning_rate": 0.02, "batch_size_per_device": 2, "accumulate_grad_batches": 1, "gradient_clip_val": 1.0,
    "is_random_seed": False, "deterministic": False, "execution_mode": "pretrain", "finetuning_model_ckpt": None,
    "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "lr_scaling_rule": False, "min_lr_scale": 10,
    "max_steps": 1000000, "max_scheduling_steps": -1, "warm_up_steps": 10000, "optimizer": "adamw",
    "num_workers": 4, "prefetch_factor": None, "dataset_name": "ucf101", "dataset_dir": "", "image_dims": [224, 224],
    "no_randomness_dataloader": False, "custom_image_normalization": False, "use_rand_caption": False,
    "validation_split_pct": 0.1, "limit_train_batches": 1.0, "limit_val_batches": 1.0, "limit_test_batches": 1.0,
    "val_sanity": 0, "val_check_interval": 1.0, "check_val_every_n_epoch": 1,
    "only_test": False, "only_test_model_ckpt": None, "infer_max_gen_len": 256, "infer_echo": False,
    "infer_output_dir": "./logs/inference", "infer_temp": 0.6, "infer_topp": 0.9, "infer_topk": None,
    "infer_video_condition_frames": 3, "infer_generate_video": False, "infer_ebt_advanced": False,
    "infer_ebt_num_steps": 1, "infer_ebt_override_alpha": 0, "infer_generated_samples": 1,
    "infer_langevin_dynamics_noise": 0, "infer_langevin_first_step": False, "infer_energy_sampling_technique": "min",
    "infer_accept_lower_energies": False, "infer_steps_final_landscape": False, "infer_alpha_final_landscape": False,
    "no_wandb": False, "wandb_entity": "", "wandb_project": "EBT", "wandb_tags": None, "wandb_offline": False,
    "wandb_watch": False, "wandb_watch_log_freq": 1000,
    "console_log_filename": "console.log", "log_model_archi": False, "log_gradients": False, "log_every_n_steps": 50,
    "resume_training_ckpt": "", "checkpoint_monitor_string": "valid_loss", "checkpoint_monitor_mode": "min",
    "save_top_k_ckpts": 10,
    "set_matmul_precision": None, "float_precision": "32-true", "compile_model": False,
    "is_slurm_run": False, "override_slurm_checks": False,
    "debug_mode": False, "fast_dev_run": False, "debug_dataloader": False, "overfit_batches": 0.0, "profiler": "",
    "no_shuffle": False, "detect_anomaly": False, "find_unused_parameters": False, "debug_unused_parameters": False,
    "manual_gc_collect_every_n_steps": -1,
}
# Where our default differs on purpose: flag -> our default. Each is listed in README.md's differences.
OUR_DIFFERENCES = {
    "multiheaded_attention_heads": 0,  # published: the size table always overwrote it; ours: 0 = the preset's
    "dataset_name": None,  # resolved per modality: the published ucf101 cannot serve text or image runs
    "infer_output_dir": "",  # results.jsonl in the run folder, not ./logs/inference/... deleted first
    "profiler": None,  # the same: no profiler ("" is not a Lightning profiler name)
}


def test_every_default_is_the_published_one_or_a_listed_difference():
    ours = vars(build_parser().parse_args([]))
    mismatched = {name: (published, ours[name]) for name, published in PUBLISHED_DEFAULTS.items()
                  if ours[name] != OUR_DIFFERENCES.get(name, published)}
    assert not mismatched, f"defaults that differ from the published ones without a listed reason: {mismatched}"
    with open(os.path.join(ROOT, "README.md")) as f:
        differences = f.read().split("## Where we differ from the published code", 1)[1]
    for name in OUR_DIFFERENCES:
        assert f"--{name}" in differences, f"README's differences do not explain --{name}"


def test_model_configs_take_their_defaults_from_the_flags():
    """A config built in Python starts where the command line does (no second set of defaults)."""
    flags = vars(build_parser().parse_args([]))
    for cls in [*CONFIGS.values(), InferenceConfig]:
        for f in fields(cls):
            if f.name in flags and f.name != "multiheaded_attention_heads":  # that one: from --model_size
                default = f.default if f.default is not MISSING else f.default_factory()
                expected = MODALITY_DEFAULTS[f.name]["IMG"] if f.name in MODALITY_DEFAULTS else flag_default(f.name)
                assert default == expected, (cls.__name__, f.name)


def test_per_modality_defaults_resolve_in_one_place():
    assert parse_args(["--modality", "VID", "--backbone_type", "pixels", "--context_length", "4"]).dataset_name == \
        "ucf101"
    assert parse_args(["--modality", "NLP", "--context_length", "8"]).dataset_name == "pajama"
    assert parse_args(["--modality", "IMG", "--patch_size", "2"]).dataset_name == "coco_medium"
    args = parse_args(["--modality", "VID", "--context_length", "4", "--val_check_interval", "50"])
    assert (args.val_check_interval, args.check_val_every_n_epoch) == (50, None)  # steps, across epochs
    args = parse_args(["--modality", "VID", "--context_length", "4", "--check_val_every_n_epoch", "5"])
    assert (args.val_check_interval, args.check_val_every_n_epoch) == (None, 5)  # the image scripts' form


def test_published_value_forms_are_accepted():
    base = quickstart_argv()
    assert parse_args(base + ["--infer_echo", "True"]).infer_echo is True
    assert parse_args(base + ["--infer_echo", "False"]).infer_echo is False
    assert parse_args(base + ["--infer_echo"]).infer_echo is True
    video = ["--modality", "VID", "--backbone_type", "pixels", "--context_length", "4", "--dataset_name",
             "moving_mnist"]
    assert parse_args(video + ["--image_dims", "128"]).image_dims == [128, 128]
    image = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "mnist", "--patch_size", "16"]
    assert parse_args(image + ["--image_dims", "128"]).image_dims == [128, 128]


ENV = {"SSV2_DIR": ROOT, "K400_DIR": ROOT, "DYCK_DIR": ROOT}  # folders that exist; nothing is read
# Each inference script, and the pretraining script whose checkpoint it evaluates.
CHECKPOINT_OF = {
    "job_scripts/nlp/inference/ebt.sh": "job_scripts/nlp/pretrain/ebt_s1.sh",
    "job_scripts/nlp/inference/baseline_transformer.sh": "job_scripts/nlp/pretrain/baseline_transformer.sh",
    "job_scripts/img/inference/ebt_denoising.sh": "job_scripts/img/pretrain_denoising/ebt_s1.sh",
    "job_scripts/img/inference/dit_denoising.sh": "job_scripts/img/pretrain_denoising/dit.sh",
    "job_scripts/vid/inference/ebt_k400_vae.sh": "job_scripts/vid/pretrain/ebt_s1_vae.sh",
    "job_scripts/vid/inference/ebt_ssv2_vae.sh": "job_scripts/vid/pretrain/ebt_s1_vae.sh",
    **{f"job_scripts/vid/inference/baseline_transformer_{data}_vae.sh":
       "job_scripts/vid/pretrain/baseline_transformer_vae.sh" for data in ("k400", "ssv2")},
    "job_scripts/vid/inference/rollout_tiny_cpu.sh": "job_scripts/vid/pretrain/ebt_tiny_cpu.sh",
}
TRAIN_MODEL_SCRIPTS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(f"{ROOT}/job_scripts/**/*.sh", recursive=True)
                             if "python train_model.py" in open(p).read())


def trained_hparams(script):
    """What a checkpoint of `script` stores: its resolved command line (plus what training adds)."""
    hp = vars(parse_args(job_script_argv(script, env=ENV)))
    return dict(hp, effective_batch_size=1, vocab_size=50277, pad_token_id=1)


@pytest.mark.parametrize("script", TRAIN_MODEL_SCRIPTS)
def test_each_job_script_passes_the_command_line_and_checkpoint_checks(script, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"")
    argv = job_script_argv(script, env=dict(ENV, CKPT=str(checkpoint)))
    args = parse_args(argv)
    if args.only_test:
        assert script in CHECKPOINT_OF, f"{script}: name the pretraining script whose checkpoint it evaluates"
        hp = inherit_checkpoint_hparams(args, argv, trained_hparams(CHECKPOINT_OF[script]))
        assert hp.only_test_model_ckpt == str(checkpoint)
    else:
        name, size = os.path.basename(script), args.model_size
        assert args.run_name.split("-")[:2] == [args.model_name, size] or name in ("quickstart.sh",
                                                                                   "debug_dataloader.sh")


def test_published_pretraining_scripts_mean_the_published_runs():
    """The flags the issue found silently different now take the published defaults."""
    s2 = parse_args(job_script_argv("job_scripts/nlp/pretrain/ebt_s2.sh", env=ENV))
    assert (s2.mcmc_step_size, s2.mcmc_step_size_learnable, s2.log_every_n_steps, s2.save_top_k_ckpts) == \
        (5.0, False, 50, 10)
    t2i = parse_args(job_script_argv("job_scripts/img/pretrain_t2i/ebt_s1.sh", env=ENV))
    assert (t2i.image_task, t2i.diffusion_steps, t2i.validation_split_pct) == ("t2i", 1000, 0.1)
    image = parse_args(job_script_argv("job_scripts/img/pretrain_denoising/ebt_s1.sh", env=ENV))
    assert (image.val_check_interval, image.check_val_every_n_epoch) == (None, 5)  # at every 5th epoch's end


def test_a_test_run_ignores_the_training_schedule_with_a_note(tmp_path, capsys):
    """The published inference scripts repeat their pretraining script's schedule; those flags cannot affect a
    test and are ignored, while a flag that would change the model still stops the run."""
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"")
    trained = trained_hparams("job_scripts/nlp/pretrain/ebt_s1.sh")
    argv = job_script_argv("job_scripts/nlp/inference/ebt.sh", "--accumulate_grad_batches", "1", "--max_steps", "20000",
                           "--peak_learning_rate", "0.5", env={"CKPT": str(checkpoint)})
    hp = inherit_checkpoint_hparams(parse_args(argv), argv, trained)
    assert (hp.accumulate_grad_batches, hp.max_steps, hp.peak_learning_rate) == (2, 1000000, 0.0012)
    note = capsys.readouterr().out
    assert "a test run ignores the training schedule's --accumulate_grad_batches, --max_steps, --peak_learning_rate" \
        in note
    from utils.cli import UsageError

    argv = job_script_argv("job_scripts/nlp/inference/ebt.sh", "--mcmc_num_steps", "3",
                           env={"CKPT": str(checkpoint)})
    with pytest.raises(UsageError, match="--mcmc_num_steps cannot change at test time"):
        inherit_checkpoint_hparams(parse_args(argv), argv, trained)
    argv = job_script_argv("job_scripts/nlp/inference/ebt.sh", "--backbone_type", "vae", env={"CKPT": str(checkpoint)})
    with pytest.raises(UsageError, match="--backbone_type is not read by --modality NLP"):
        inherit_checkpoint_hparams(parse_args(argv), argv, trained)
