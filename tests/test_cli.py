"""train_model.py's command line: presets, RUN_NAME parsing in job scripts, and bad input."""
import subprocess

import pytest

import train_model
from utils.cli import parse_args


def test_model_size_preset_and_overrides():
    args = parse_args(["--model_size", "xxs"])
    assert (args.num_transformer_blocks, args.multiheaded_attention_heads, args.embedding_dim) == (6, 6, 384)
    args = parse_args(["--model_size", "xxs", "--override_embedding_dim", "96", "--override_transformer_blocks", "3",
                       "--multiheaded_attention_heads", "4"])
    assert (args.num_transformer_blocks, args.multiheaded_attention_heads, args.embedding_dim) == (3, 4, 96)
    assert parse_args(["--max_steps", "50", "--warm_up_steps", "5"]).max_scheduling_steps == 50


def test_run_name_parsing_of_job_scripts():
    script = ('RUN_NAME="ebt-xxs-bs_256_s1_lr_"; MODEL_NAME="${RUN_NAME%%-*}"; '
              'MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"; echo "$MODEL_NAME $MODEL_SIZE"')
    assert subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout.split() == ["ebt", "xxs"]


@pytest.mark.parametrize("argv, message", [
    (["--not_a_flag", "1"], "unrecognized arguments: --not_a_flag"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--image_task", "t2i"], "--image_task t2i needs captions"),
    (["--modality", "IMG", "--dataset_name", "coco_tiny", "--image_task", "t2i", "--image_dims", "36", "36"],
     "--image_dims must be a multiple of 8"),
    (["--modality", "IMG", "--dataset_name", "shakespeare"], "--dataset_name shakespeare is not an image dataset"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--model_name", "baseline_transformer"],
     "use --model_name ebt or dit"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--image_dims", "28", "32"], "images are square"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--image_dims", "28", "28", "--patch_size", "8"],
     "--patch_size 8 does not divide the image side 28"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--denoise_images_noise_level", "1.5"], "must be in (0, 1]"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--execution_mode", "inference"],
     "--execution_mode inference evaluates a checkpoint: add --only_test"),
    (["--modality", "IMG", "--dataset_name", "image_folder"], "--dataset_name image_folder needs --dataset_dir"),
    (["--execution_mode", "inference"], "--execution_mode inference evaluates a checkpoint"),
    (["--only_test"], "--only_test needs --only_test_model_ckpt"),
    (["--only_test", "--only_test_model_ckpt", "/no/such.ckpt"], "--only_test_model_ckpt /no/such.ckpt: no such file"),
    (["--infer_ebt_advanced", "--model_name", "baseline_transformer"], "a baseline_transformer model cannot think longer"),
    (["--langevin_dynamics_noise_learnable"], "needs a starting --langevin_dynamics_noise"),
    (["--modality", "VID", "--model_name", "dit"], "use --model_name ebt or baseline_transformer"),
    (["--modality", "VID", "--dataset_name", "mnist"], "--dataset_name mnist is not a video dataset"),
    (["--modality", "VID", "--backbone_type", "vae", "--image_dims", "60", "60"], "divisible by 8"),
    (["--modality", "VID", "--latents_dir", "/no/such/latents"], "make it with python utils/pre_encode_videos.py"),
    (["--modality", "VID", "--infer_generate_video", "--context_length", "7", "--infer_max_gen_len", "16"],
     "video rollouts need 0 < --infer_video_condition_frames"),
    (["--vocab_to_embed_uses_prob_dist", "--no-normalize_initial_condition"],
     "--vocab_to_embed_uses_prob_dist needs --normalize_initial_condition"),
    (["--multiheaded_attention_heads", "3"], "does not divide the width 128"),
    (["--context_length", "1"], "--context_length 1 is too short"),
    (["--dataset_name", "wikitext"], "--dataset_name wikitext is unknown"),
    (["--dataset_name", "text"], "--dataset_name text needs --dataset_dir"),
    (["--dataset_name", "text", "--dataset_dir", "/no/such/folder"], "--dataset_dir /no/such/folder does not exist"),
    (["--resume_training_ckpt", "/no/such.ckpt"], "--resume_training_ckpt /no/such.ckpt: no such file"),
    (["--compile_model"], "torch.compile cannot double-backward"),
    (["--is_slurm_run", "--debug_mode"], "debug settings"),
    (["--model_size", "huge"], "invalid choice: 'huge'"),
    (["--distributed_strategy", "fsdp"], "--distributed_strategy fsdp needs GPUs"),
    (["--distributed_strategy", "horovod"], "invalid choice: 'horovod'"),
    (["--vocab_chunk_mb", "0"], "--vocab_chunk_mb 0 must be positive"),
    (["--fused_vocab_loss", "on", "--no_mcmc_detach"],
     "--fused_vocab_loss on cannot run: --no_mcmc_detach differentiates through the states"),
    (["--fused_vocab_loss", "on", "--absolute_clamp", "5"], "--fused_vocab_loss on cannot run: --absolute_clamp"),
    (["--modality", "IMG", "--dataset_name", "mnist", "--fused_vocab_loss", "off"],
     "--fused_vocab_loss and --vocab_chunk_mb are language-model options"),
])
def test_bad_input_stops_before_any_work_with_one_line(argv, message, capsys, tmp_path):
    # --fast_dev_run: should a check ever stop firing, the test fails in seconds instead of training
    status = train_model.main(argv + ["--log_dir", str(tmp_path / "logs"), "--fast_dev_run"])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_unknown_tokenizer_is_reported(capsys, tmp_path):
    status = train_model.main(["--tokenizer", str(tmp_path / "missing_tokenizer"), "--log_dir", str(tmp_path)])
    assert status == 2
    assert "--tokenizer" in capsys.readouterr().err


def test_job_scripts_pass_the_command_line_checks(tmp_path):
    """Every flag of the paper's job scripts is accepted: a `python` shim records the command each script runs,
    which is then parsed here, in this process."""
    import os

    from utils.cli import parse_args

    shim = tmp_path / "python"
    shim.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {tmp_path}/argv\n")  # NUL-separated arguments
    shim.chmod(0o755)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"")
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", CKPT=str(checkpoint), SSV2_DIR=str(tmp_path),
               K400_DIR=str(tmp_path))
    env.pop("SLURM_ARRAY_TASK_ID", None)
    env.pop("SLURM_JOB_ID", None)
    for script, expected in [
            ("pretrain/ebt_s1.sh", "ebt-xxs-bs_256_s1_lr_0.0012 ebt 384"),
            ("pretrain/ebt_s2.sh", "ebt-xxs-bs_256_s2_lr_0.0012 ebt 384"),
            ("pretrain/ebt_s1_mn.sh", "ebt-xxs-bs_256_s1_mn_lr_0.0012 ebt 384"),
            ("pretrain/ebt_s2_tiny_cpu.sh", "ebt-4xs-s2_tiny_cpu ebt 128"),
            ("pretrain/baseline_transformer.sh", "baseline_transformer-xxs-bs_256_lr_0.0012 baseline_transformer 384"),
            ("inference/ebt.sh", "ebt-xxs-2_steps_langevin_1_lambada ebt 128"),
            ("inference/baseline_transformer.sh", "baseline_transformer-xxs-baseline_gen_lambada ebt 128"),
            ("../debug/debug_dataloader.sh", "quickstart ebt 128"),
            ("../img/pretrain_denoising/ebt_s1.sh", "ebt-large-bs_128_s1_lr_0.0001 ebt 1536"),
            ("../img/pretrain_denoising/ebt_s2.sh", "ebt-large-bs_128_s2_lr_0.0001 ebt 1536"),
            ("../img/pretrain_denoising/dit.sh", "dit-large-bs_128_lr_0.0001 dit 1536"),
            ("../img/pretrain_denoising/ebt_tiny_cpu.sh", "ebt-4xs-denoise_tiny_cpu ebt 128"),
            ("../img/pretrain_denoising/dit_tiny_cpu.sh", "dit-4xs-denoise_tiny_cpu dit 128"),
            ("../img/pretrain_t2i/ebt_s1.sh", "ebt-large-bs_256_t2i_s1_lr_0.0001 ebt 1536"),
            ("../img/pretrain_t2i/ebt_s2.sh", "ebt-xxs-bs_256_t2i_s2_lr_0.0004 ebt 384"),
            ("../img/pretrain_t2i/dit.sh", "dit-large-bs_256_t2i_lr_0.0001 dit 1536"),
            ("../img/inference/ebt_denoising.sh", "ebt-large-denoise_noise_0.2_2_steps ebt 128"),
            ("../img/inference/dit_denoising.sh", "dit-large-denoise_noise_0.2_recurse_2 ebt 128"),
            ("../vid/pretrain/ebt_s1_vae.sh", "ebt-xxs-bs_256_vid_s1_vae_lr_0.0004 ebt 384"),
            ("../vid/pretrain/ebt_s1_dino.sh", "ebt-xl-bs_256_vid_s1_dino_lr_0.0000667 ebt 2048"),
            ("../vid/pretrain/ebt_s2_vae.sh", "ebt-xxs-bs_256_vid_s2_vae_lr_0.0004 ebt 384"),
            ("../vid/pretrain/baseline_transformer_vae.sh",
             "baseline_transformer-xxs-bs_256_vid_vae_lr_0.0012 baseline_transformer 384"),
            ("../vid/pretrain/baseline_transformer_dino.sh",
             "baseline_transformer-small-bs_256_vid_dino_lr_0.0002 baseline_transformer 768"),
            ("../vid/pretrain/ebt_tiny_cpu.sh", "ebt-4xs-vid_tiny_cpu ebt 128"),
            ("../vid/pretrain/baseline_transformer_tiny_cpu.sh",
             "baseline_transformer-4xs-vid_tiny_cpu baseline_transformer 128"),
            ("../vid/inference/ebt_k400_vae.sh", "ebt-medium-vid_rollout_k400 ebt 128"),
            ("../vid/inference/ebt_ssv2_vae.sh", "ebt-medium-vid_rollout_ssv2 ebt 128"),
            ("../vid/inference/baseline_transformer_k400_vae.sh", "baseline_transformer-medium-vid_rollout_k400 ebt 128"),
            ("../vid/inference/baseline_transformer_ssv2_vae.sh", "baseline_transformer-medium-vid_rollout_ssv2 ebt 128"),
            ("../vid/inference/rollout_tiny_cpu.sh", "vid_rollout_tiny_cpu ebt 128")]:
        result = subprocess.run(["bash", f"job_scripts/nlp/{script}"], env=env, capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)
        command = (tmp_path / "argv").read_text().split("\0")[:-1]
        assert command[0] == "train_model.py", script
        a = parse_args(command[1:])
        assert f"{a.run_name} {a.model_name} {a.embedding_dim}" == expected, script


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
    status = train_model.main(["--dataset_name", "text", "--dataset_dir", str(empty), "--log_dir",
                               str(tmp_path / "logs"), "--no_wandb"])
    assert status == 2
    assert "--dataset_dir" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()
