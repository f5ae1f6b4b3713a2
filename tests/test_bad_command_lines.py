"""Bad command lines of every entry point, each run as a user runs it (a subprocess): exit status 2, exactly one
line on stderr naming the script and what to change, no traceback, and nothing written (issue 16).

The messages themselves are checked in the scripts' own tests (train_model.py's in test_cli.py); this table is
the regression net for how a failure reads. Placeholders in the command lines: {out} the output folder (must stay
absent), {file} a text file, {empty} an empty folder, {missing} a path that does not exist, {junk} a folder of one
binary .txt file, {broken} a folder of .png files that are not pictures, {ebt} / {dit} tiny
image-denoiser checkpoints, {vid} a video checkpoint, {truncated} half a checkpoint.
"""
import os
import subprocess
import sys

import pytest
from job_script_argv import quickstart_argv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}

# --fast_dev_run: should a check stop firing, the case fails in seconds instead of training
NLP = quickstart_argv() + ["--no_wandb", "--fast_dev_run", "--log_dir", "{out}"]
VID = ["--modality", "VID", "--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--image_dims", "32",
       "--context_length", "7", "--num_workers", "0", "--no_wandb", "--fast_dev_run", "--log_dir", "{out}"]
ENCODE = ["--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--context_length", "3", "--device", "cpu",
          "--out_dir", "{out}"]
IMG = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "image_folder", "--dataset_dir", "{broken}",
       "--image_dims", "16", "16", "--patch_size", "4", "--model_size", "4xs", "--num_workers", "0", "--no_wandb",
       "--fast_dev_run", "--log_dir", "{out}"]
PSNR = ["--ebt_ckpt", "{ebt}", "--dit_ckpt", "{dit}", "--num_images", "2", "--out_dir", "{out}"]
CASES = [
    # train_model.py: values outside their ranges, unknown flags, missing or wrong files
    ("train_model.py", NLP + ["--limit_val_batches", "1.5"], "--limit_val_batches 1.5: must be a fraction"),
    ("train_model.py", NLP + ["--seed", "-5"], "--seed -5: must be a whole number"),
    ("train_model.py", NLP + ["--multiheaded_attention_heads", "-2"], "--multiheaded_attention_heads -2"),
    ("train_model.py", NLP + ["--override_embedding_dim", "-64"], "--override_embedding_dim -64"),
    ("train_model.py", NLP + ["--num_workers", "-1"], "--num_workers -1: must be >= 0"),
    ("train_model.py", NLP + ["--val_check_interval", "0"], "--val_check_interval 0"),
    ("train_model.py", NLP + ["--save_top_k_ckpts", "-2"], "--save_top_k_ckpts -2: must be >= -1"),
    ("train_model.py", NLP + ["--peak_learning_rate", "-0.001"], "--peak_learning_rate -0.001: must be positive"),
    ("train_model.py", VID + ["--image_dims", "0", "0"], "--image_dims 0 0: must be positive"),
    ("train_model.py", VID + ["--pixel_pooling", "0"], "--pixel_pooling 0: must be >= 1"),
    ("train_model.py", NLP + ["--not_a_flag", "1"], "unrecognized arguments: --not_a_flag"),
    ("train_model.py", NLP + ["--gpus", "two"], "--gpus two: write -1"),
    ("train_model.py", NLP + ["--dataset_name", "text"], "--dataset_name text needs --dataset_dir"),
    ("train_model.py", NLP + ["--dataset_name", "text", "--dataset_dir", "{empty}"], "--dataset_dir"),
    ("train_model.py", NLP + ["--resume_training_ckpt", "{missing}"], "--resume_training_ckpt {missing}: no such file"),
    ("train_model.py", NLP + ["--resume_training_ckpt", "{file}"], "is not a checkpoint of this project"),
    ("train_model.py", NLP + ["--resume_training_ckpt", "{ebt}"], "it is a --modality IMG checkpoint"),
    ("train_model.py", NLP + ["--only_test", "--only_test_model_ckpt", "{file}"], "is not a checkpoint"),
    ("train_model.py", NLP + ["--only_test", "--only_test_model_ckpt", "{truncated}"], "is not a checkpoint"),
    ("train_model.py", NLP[:-1] + ["{file}/logs"], "--log_dir {file}/logs: {file} is a file, not a folder"),
    ("train_model.py", NLP + ["--gpus", "2"], "--gpus 2 asks for GPUs but torch sees none here"),
    ("train_model.py", NLP + ["--dataset_name", "text", "--dataset_dir", "{junk}"], "junk.txt is not text"),
    ("train_model.py", IMG, "none of the 1 images of this split can be read"),
    ("train_model.py", NLP + ["--float_precision", "16-mixed"], "--float_precision 16-mixed needs a GPU"),
    ("train_model.py", VID + ["--backbone_type", "dinov2", "--vit_backbone_size", "small"],
     "could not load the DINOv2"),
    # utils/
    ("utils/pre_encode_videos.py", ENCODE + ["--context_length", "0"], "--context_length: 0: must be at least 1"),
    ("utils/pre_encode_videos.py", ENCODE + ["--shard_size", "0"], "--shard_size: 0: must be at least 1"),
    ("utils/pre_encode_videos.py", ENCODE[:-2], "the following arguments are required: --out_dir"),
    ("utils/pre_encode_videos.py", ENCODE + ["--dataset_name", "video_folder", "--dataset_dir", "{missing}"],
     "--dataset_dir {missing}: no such folder"),
    ("utils/pre_encode_videos.py", ENCODE + ["--dataset_name", "video_folder", "--dataset_dir", "{empty}"],
     "has 0 video(s)"),
    ("utils/pre_encode_videos.py", ENCODE + ["--dataset_name", "nosuch"], "--dataset_name nosuch: unknown video"),
    ("utils/pre_encode_videos.py", ENCODE + ["--out_dir", "{file}"], "--out_dir {file} is a file; give a folder"),
    ("utils/pre_encode_videos.py", ENCODE + ["--device", "gpu"], "--device gpu: not a device"),
    ("utils/pre_encode_videos.py", ENCODE + ["--pixel_pooling", "3"], "pixel pooling 3 must be a positive divisor"),
    ("utils/pre_encode_videos.py", ENCODE + ["--vae_normalization", "--custom_image_normalization"],
     "exclude each other"),
    ("utils/pre_encode_videos.py", ENCODE + ["--backbone_type", "dinov2", "--vit_backbone_size", "facebook/nothing"],
     "could not load the DINOv2 (vit_backbone_size) 'facebook/nothing'"),  # offline: the hub's message, one line
    ("utils/find_corrupt_files.py", ["{missing}"], "DATASET_DIR {missing}: no such folder"),
    ("utils/find_corrupt_files.py", ["{file}"], "DATASET_DIR {file} is not a folder"),
    ("utils/find_corrupt_files.py", ["{empty}", "{file}/corrupt.txt"], "LOG_PATH {file}/corrupt.txt: {file} is a file"),
    ("utils/find_corrupt_files.py", [], "the following arguments are required: dataset_dir"),
    # inference/
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--ebt_ckpt", "{dit}", "--dit_ckpt", "{ebt}"],
     "--ebt_ckpt {dit} is a --model_name dit checkpoint; pass it as --dit_ckpt"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--dit_ckpt", "{ebt}"],
     "--dit_ckpt {ebt} is a --model_name ebt checkpoint; pass it as --ebt_ckpt"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--ebt_ckpt", "{vid}"], "is a --modality VID checkpoint"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--ebt_ckpt", "{file}"],
     "--ebt_ckpt {file} is not a checkpoint of this project"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--dit_ckpt", "{missing}"], "--dit_ckpt {missing}: no such"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--ebt_steps", "0"], "--ebt_steps: 0: must be at least 1"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--num_images", "0"], "--num_images: 0: must be at least 1"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--dit_recursions", "-1"], "--dit_recursions: -1: must be"),
    ("inference/img/psnr_vs_forward_passes.py", PSNR + ["--noise_levels", "1.5"], "--noise_levels: 1.5: must be in"),
    # experiments/
    ("experiments/run_all.py", ["--only", "scaling", "--out_dir", "{out}"], "argument --only: invalid choice"),
    ("experiments/run_all.py", ["--summarize_only", "--out_dir", "{out}", "--results_md", "{file}/results.md"],
     "--results_md {file}/results.md: {file} is a file"),
    ("experiments/learning_curves.py", ["--budgets", "100", "100", "--out_dir", "{out}"], "at least two different"),
    ("experiments/learning_curves.py", ["--budgets", "0", "100", "--out_dir", "{out}"], "--budgets: 0: must be"),
    ("experiments/thinking.py", ["--eval_rows", "0", "--out_dir", "{out}"], "--eval_rows: 0: must be at least 1"),
    ("experiments/denoising.py", ["--seeds", "-5", "--out_dir", "{out}"], "--seeds: -5: must be in 0 .."),
    ("experiments/video.py", ["--jobs", "0", "--out_dir", "{out}"], "--jobs: 0: must be at least 1"),
    ("experiments/cost_ratio.py", ["--repeats", "0", "--out_dir", "{out}"], "--repeats: 0: must be at least 1"),
    ("experiments/cost_ratio.py", ["--out_dir", "{file}"], "--out_dir {file} is a file; give a folder"),
    # benchmarks/
    ("benchmarks/bench_generation.py", ["--new_tokens", "0"], "--new_tokens: 0: must be at least 1"),
    ("benchmarks/bench_generation.py", ["--vocab", "1"], "--vocab: 1: must be at least 2"),
    ("benchmarks/bench_generation.py", ["--sizes", "huge"], "argument --sizes: invalid choice: 'huge'"),
    ("benchmarks/bench_training_step.py", ["--repeats", "0"], "--repeats: 0: must be at least 1"),
    ("benchmarks/bench_training_step.py", ["--device", "gpu"], "--device gpu: not a device"),
    ("benchmarks/bench_training_step.py", ["--configs", "huge"], "argument --configs: invalid choice: 'huge'"),
]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tiny untrained checkpoints as training writes them ({"hyper_parameters", "state_dict"}): an image EBT and
    DiT (denoising), a video Transformer++, and the first half of the EBT's file."""
    import torch

    from model.registry import build_model
    from utils.cli import parse_args

    image = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "mnist", "--image_dims", "28",
             "--patch_size", "4", "--model_size", "4xs", "--override_embedding_dim", "32"]
    video = VID[:-4] + ["--model_size", "4xs", "--override_embedding_dim", "32", "--pixel_pooling", "8"]
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name, argv in (("ebt", image + ["--model_name", "ebt"]), ("dit", image + ["--model_name", "dit"]),
                       ("vid", video + ["--model_name", "baseline_transformer"])):
        hp = vars(parse_args(argv))
        model = build_model(hp)
        paths[name] = str(folder / f"{name}.ckpt")
        torch.save({"hyper_parameters": hp, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                    "global_step": 0}, paths[name])
    data = open(paths["ebt"], "rb").read()
    paths["truncated"] = str(folder / "truncated.ckpt")
    with open(paths["truncated"], "wb") as f:
        f.write(data[:len(data) // 2])
    return paths


def files_below(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, dirs, files in os.walk(folder)
                  for n in dirs + files)


def case_id(case):
    script, _, message = getattr(case, "values", case)
    return f"{os.path.basename(script)}: {message}"


@pytest.mark.parametrize("script, argv, message", CASES, ids=map(case_id, CASES))
def test_a_bad_command_line_stops_with_one_line(script, argv, message, tmp_path, checkpoints):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "junk").mkdir()  # a binary file named .txt
    (tmp_path / "junk" / "junk.txt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "broken").mkdir()  # "images" that no decoder reads
    for i in range(3):
        (tmp_path / "broken" / f"{i}.png").write_bytes(b"not a picture")
    places = dict(checkpoints, out=str(tmp_path / "out"), file=str(tmp_path / "notes.txt"),
                  empty=str(tmp_path / "empty"), missing=str(tmp_path / "missing"), junk=str(tmp_path / "junk"),
                  broken=str(tmp_path / "broken"))
    argv, message = [a.format(**places) for a in argv], message.format(**places)
    before = files_below(tmp_path)
    run = subprocess.run([sys.executable, script, *argv], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=300)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{script}: error: ") and message in lines[0], lines[0]
    assert files_below(tmp_path) == before  # no run folder, no output
