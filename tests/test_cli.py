"""train_model.py's command line: presets, RUN_NAME parsing in job scripts, and bad input."""
import subprocess

import pytest
from job_script_argv import quickstart_argv

import train_model
from utils.cli import parse_args

NLP = quickstart_argv()
IMG = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "mnist", "--image_dims", "28",
       "--patch_size", "4", "--num_workers", "0"]
T2I = ["--modality", "IMG", "--image_task", "t2i", "--dataset_name", "coco_tiny", "--image_dims", "32",
       "--patch_size", "2", "--num_workers", "0"]
VID = ["--modality", "VID", "--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--image_dims", "32",
       "--context_length", "7", "--num_workers", "0"]


def test_model_size_preset_and_overrides():
    args = parse_args(NLP + ["--model_size", "xxs"])
    assert (args.num_transformer_blocks, args.multiheaded_attention_heads, args.embedding_dim) == (6, 6, 384)
    args = parse_args(NLP + ["--model_size", "xxs", "--override_embedding_dim", "96", "--override_transformer_blocks",
                             "3", "--multiheaded_attention_heads", "4"])
    assert (args.num_transformer_blocks, args.multiheaded_attention_heads, args.embedding_dim) == (3, 4, 96)
    assert parse_args(NLP + ["--max_steps", "50", "--warm_up_steps", "5"]).max_scheduling_steps == 50


def test_run_name_parsing_of_job_scripts():
    script = ('RUN_NAME="ebt-xxs-bs_256_s1_lr_"; MODEL_NAME="${RUN_NAME%%-*}"; '
              'MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"; echo "$MODEL_NAME $MODEL_SIZE"')
    assert subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout.split() == ["ebt", "xxs"]


@pytest.mark.parametrize("argv, message", [
    (NLP + ["--not_a_flag", "1"], "unrecognized arguments: --not_a_flag"),
    (IMG + ["--image_task", "t2i"], "--image_task t2i needs captions"),
    (T2I + ["--image_dims", "36", "36"], "--image_dims must be a multiple of 8"),
    (IMG + ["--dataset_name", "shakespeare"], "--dataset_name shakespeare is not an image dataset"),
    (IMG + ["--model_name", "baseline_transformer"], "--modality IMG has no model baseline_transformer: use "
                                                      "--model_name dit or ebt"),
    (IMG + ["--image_dims", "28", "32"], "images are square"),
    (IMG + ["--image_dims", "28", "28", "--patch_size", "8"], "--patch_size 8 does not divide the image side 28"),
    (IMG + ["--image_dims", "28", "28", "28"], "--image_dims takes H W or one side, not 3 numbers"),
    (IMG + ["--denoise_images_noise_level", "1.5"], "must be in (0, 1]"),
    (IMG + ["--execution_mode", "inference"], "--execution_mode inference evaluates a checkpoint: add --only_test"),
    (IMG + ["--dataset_name", "image_folder"], "--dataset_name image_folder needs --dataset_dir"),
    (NLP + ["--execution_mode", "inference"], "--execution_mode inference evaluates a checkpoint"),
    (NLP + ["--dataset_name", "bigbench_dyck_languages", "--mcmc_replay_buffer"],
     "question/answer rows (--dataset_name bigbench_dyck_languages) carry a loss mask and are never replayed"),
    (NLP + ["--only_test"], "--only_test needs --only_test_model_ckpt"),
    (NLP + ["--only_test", "--only_test_model_ckpt", "/no/such.ckpt"],
     "--only_test_model_ckpt /no/such.ckpt: no such file"),
    (quickstart_argv("baseline_transformer") + ["--infer_ebt_advanced"],
     "--infer_ebt_advanced is not read by --modality NLP --model_name baseline_transformer"),
    (NLP + ["--langevin_dynamics_noise_learnable"], "needs a starting --langevin_dynamics_noise"),
    (VID + ["--model_name", "dit"], "use --model_name baseline_transformer or ebt"),
    (VID + ["--dataset_name", "mnist"], "--dataset_name mnist is not a video dataset"),
    (VID + ["--backbone_type", "vae", "--image_dims", "60", "60"], "divisible by 8"),
    (VID + ["--latents_dir", "/no/such/latents"], "make it with python utils/pre_encode_videos.py"),
    (VID + ["--infer_generate_video", "--infer_max_gen_len", "16"],
     "video rollouts need 0 < --infer_video_condition_frames"),
    (NLP + ["--vocab_to_embed_uses_prob_dist", "--no-normalize_initial_condition"],
     "--vocab_to_embed_uses_prob_dist needs --normalize_initial_condition"),
    (NLP + ["--multiheaded_attention_heads", "3"], "does not divide the width 128"),
    (NLP + ["--context_length", "1"], "--context_length 1 is too short"),
    (NLP + ["--mcmc_num_steps", "0"], "--mcmc_num_steps must be at least 1"),
    (NLP + ["--mcmc_step_size", "-5"], "--mcmc_step_size -5 must be positive"),
    (NLP + ["--dataset_name", "wikitext"], "--dataset_name wikitext is unknown"),
    (NLP + ["--dataset_name", "text"], "--dataset_name text needs --dataset_dir"),
    (NLP + ["--dataset_dir", "/tmp"], "--dataset_name shakespeare is bundled and reads no --dataset_dir; drop "
                                      "--dataset_dir, or use --dataset_name text"),
    (NLP + ["--dataset_name", "text", "--dataset_dir", "/no/such/folder"],
     "--dataset_dir /no/such/folder does not exist"),
    (NLP + ["--resume_training_ckpt", "/no/such.ckpt"], "--resume_training_ckpt /no/such.ckpt: no such file"),
    (NLP + ["--compile_model"], "torch.compile cannot double-backward"),
    (NLP + ["--is_slurm_run", "--debug_mode"], "debug settings"),
    (NLP + ["--model_size", "huge"], "invalid choice: 'huge'"),
    (NLP + ["--distributed_strategy", "fsdp", "--find_unused_parameters"],
     "--find_unused_parameters is a DDP setting; drop it with --distributed_strategy fsdp"),
    (NLP + ["--distributed_strategy", "fsdp", "--float_precision", "16-mixed"],
     "--distributed_strategy fsdp runs in 32-true, bf16-mixed, bf16-true or 16-true precision"),
    (NLP + ["--distributed_strategy", "horovod"], "invalid choice: 'horovod'"),
    (quickstart_argv("baseline_transformer") + ["--distributed_strategy", "fsdp", "--compile_model"],
     "--compile_model cannot be combined with --distributed_strategy fsdp"),
    (NLP + ["--vocab_chunk_mb", "0"], "--vocab_chunk_mb 0 must be positive"),
    (NLP + ["--fused_vocab_loss", "on", "--no_mcmc_detach"],
     "--fused_vocab_loss on cannot run: --no_mcmc_detach differentiates through the states"),
    (NLP + ["--fused_vocab_loss", "on", "--absolute_clamp", "5"], "--fused_vocab_loss on cannot run: --absolute_clamp"),
    (NLP + ["--infer_echo", "maybe"], "argument --infer_echo: 'maybe' is not True or False"),
    # values outside their ranges (utils/cli.VALUE_RANGES), before any library sees them
    (NLP + ["--limit_val_batches", "1.5"], "--limit_val_batches 1.5: must be a fraction in [0, 1] or a whole number"),
    (NLP + ["--seed", "-5"], "--seed -5: must be a whole number in 0 .. 2**32 - 1"),
    (NLP + ["--multiheaded_attention_heads", "-2"], "--multiheaded_attention_heads -2: must be >= 0"),
    (NLP + ["--override_embedding_dim", "-64"], "--override_embedding_dim -64: must be >= 0"),
    (NLP + ["--override_transformer_blocks", "-1"], "--override_transformer_blocks -1: must be >= 0"),
    (NLP + ["--num_workers", "-1"], "--num_workers -1: must be >= 0"),
    (NLP + ["--val_check_interval", "0"], "--val_check_interval 0: must be a fraction of an epoch in (0, 1]"),
    (NLP + ["--save_top_k_ckpts", "-2"], "--save_top_k_ckpts -2: must be >= -1"),
    (NLP + ["--peak_learning_rate", "-0.001"], "--peak_learning_rate -0.001: must be positive"),
    (NLP + ["--mcmc_replay_buffer", "--mcmc_replay_buffer_size", "0"], "--mcmc_replay_buffer_size must be at least 1"),
    (VID + ["--image_dims", "0", "0"], "--image_dims 0 0: must be positive"),
    (VID + ["--pixel_pooling", "0"], "--pixel_pooling 0: must be >= 1"),
    # written flags the chosen modality and model do not read
    (IMG + ["--fused_vocab_loss", "off"], "--fused_vocab_loss is not read by --modality IMG --model_name ebt "
                                          "(only by NLP ebt, NLP baseline_transformer"),
    (VID + ["--mcmc_replay_buffer"], "--mcmc_replay_buffer is not read by --modality VID --model_name ebt "
                                     "(only by NLP ebt); drop it"),
    (VID + ["--contrastive_loss"], "--contrastive_loss is not read by --modality VID"),
    (VID + ["--soften_target_prob_dist", "0.1"], "--soften_target_prob_dist is not read by --modality VID"),
    (VID + ["--ebt_attention", "reference"], "--ebt_attention is not read by --modality VID"),
    (IMG + ["--activation_checkpointing"], "--activation_checkpointing is not read by --modality IMG"),
    (IMG + ["--ebt_type", "time_embed"], "--ebt_type is not read by --modality IMG --model_name ebt"),
    (T2I + ["--denoise_images_noise_level", "0.5"],
     "--denoise_images_noise_level is not read by --modality IMG --image_task t2i --model_name ebt"),
    (quickstart_argv("baseline_transformer") + ["--mcmc_step_size", "5"],
     "--mcmc_step_size is not read by --modality NLP --model_name baseline_transformer"),
    (IMG + ["--model_name", "dit", "--mcmc_num_steps", "3"], "--mcmc_num_steps is not read by --modality IMG "
                                                             "--model_name dit"),
    (NLP + ["--backbone_type", "vae"], "--backbone_type is not read by --modality NLP --model_name ebt (only by VID"),
    (VID + ["--tokenizer", "byte"], "--tokenizer is not read by --modality VID"),
    (IMG + ["--context_length", "16"], "--context_length is not read by --modality IMG"),
])
def test_bad_input_stops_before_any_work_with_one_line(argv, message, capsys, tmp_path):
    # --fast_dev_run: should a check ever stop firing, the test fails in seconds instead of training
    status = train_model.main(argv + ["--log_dir", str(tmp_path / "logs"), "--fast_dev_run"])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_no_flags_points_at_the_quickstart(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert train_model.main([]) == 2
    err = capsys.readouterr().err
    assert "bash job_scripts/quickstart.sh runs the offline CPU quickstart" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_unknown_tokenizer_is_reported(capsys, tmp_path):
    status = train_model.main(NLP + ["--tokenizer", str(tmp_path / "missing_tokenizer"), "--log_dir", str(tmp_path)])
    assert status == 2
    assert "--tokenizer" in capsys.readouterr().err


def test_every_script_the_readme_names_exists_and_parses():
    import os
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md")) as f:
        scripts = set(re.findall(r"(?:job_scripts/[\w/{},.-]+\.sh|slurm_executor\.sh)", f.read()))
    expanded, pending = set(), set(scripts)
    while pending:  # job_scripts/nlp/inference/{ebt,baseline_transformer}.sh -> both files (any number of {})
        script = pending.pop()
        match = re.search(r"\{([^}]*)\}", script)
        if match:
            pending |= {script[:match.start()] + name + script[match.end():] for name in match.group(1).split(",")}
        else:
            expanded.add(script)
    assert len(expanded) >= 6
    for script in sorted(expanded):
        assert os.path.isfile(os.path.join(root, script)), script
        assert subprocess.run(["bash", "-n", script], cwd=root).returncode == 0, script


def test_every_process_of_a_run_agrees_on_its_folder(tmp_path):
    from argparse import Namespace

    from train_model import resolve_run_dir

    args = Namespace(log_dir=str(tmp_path), run_name="r")
    run_dir, rank_zero = resolve_run_dir(args, {})
    assert rank_zero and run_dir.startswith(str(tmp_path / "r"))
    assert resolve_run_dir(args, {"LOCAL_RANK": "1", "EBT_RUN_DIR": run_dir}) == (run_dir, False)
    srun = {"SLURM_NTASKS": "8", "SLURM_JOB_ID": "77"}
    assert resolve_run_dir(args, dict(srun, SLURM_PROCID="0")) == (str(tmp_path / "r" / "job77"), True)
    assert resolve_run_dir(args, dict(srun, SLURM_PROCID="5")) == (str(tmp_path / "r" / "job77"), False)


def test_an_empty_text_folder_stops_the_run_before_its_folder_exists(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status = train_model.main(NLP + ["--dataset_name", "text", "--dataset_dir", str(empty), "--log_dir",
                               str(tmp_path / "logs"), "--no_wandb"])
    assert status == 2
    assert "--dataset_dir" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()
