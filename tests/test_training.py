"""End-to-end runs of train_model.py on a small real corpus: falling loss, files written, exact resume."""
import csv
import glob
import json
import os

import pytest
import torch
from job_script_argv import quickstart_argv

import train_model
from utils.checkpointing import atomic_torch_save

# The quickstart recipe (job_scripts/quickstart.sh) shrunk to test size, on one play (the `corpus` fixture).
TINY = ["--dataset_name", "text", "--override_embedding_dim", "32", "--override_transformer_blocks", "1",
        "--multiheaded_attention_heads", "2", "--context_length", "32", "--batch_size_per_device", "8",
        "--warm_up_steps", "5", "--log_every_n_steps", "1", "--no_wandb", "--validation_split_pct", "0.05"]


def tiny_run(*extra):
    """The tiny run of the model that `extra` names (--model_name, default ebt), with `extra` appended."""
    model_name = extra[list(extra).index("--model_name") + 1] if "--model_name" in extra else "ebt"
    return quickstart_argv(model_name) + TINY + list(extra)


def run(tmp_path, corpus, *extra, name="run"):
    log_dir = tmp_path / "logs"
    assert train_model.main(tiny_run("--dataset_dir", corpus, "--log_dir", str(log_dir), "--run_name", name,
                                     *extra)) == 0
    (run_dir,) = glob.glob(str(log_dir / name / "*"))
    return run_dir


def read_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    column = lambda key: {int(r["step"]): float(r[key]) for r in rows if r.get(key)}
    return column


@pytest.mark.parametrize("model_name", ["ebt", "baseline_transformer"])
def test_training_lowers_validation_loss_and_writes_its_files(tmp_path, corpus, model_name, capsys):
    thinking = ["--mcmc_step_size", "5", "--mcmc_step_size_lr_multiplier", "15"] if model_name == "ebt" else []
    run_dir = run(tmp_path, corpus, "--model_name", model_name, *thinking, "--max_steps", "80",
                  "--val_check_interval", "20", "--peak_learning_rate", "0.01")
    valid = read_metrics(run_dir)("valid_loss")
    steps = sorted(valid)
    assert valid[steps[-1]] < valid[steps[0]] - 0.2, valid
    assert os.path.isfile(os.path.join(run_dir, "training_curves.png"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    assert os.path.isfile(os.path.join(run_dir, "console.log"))
    out = capsys.readouterr().out
    assert "perplexity" in out and "training_curves.png" in out
    fused = "thinking step + cross-entropy" if model_name == "ebt" else "head + cross-entropy"
    assert f"vocabulary loss: fused {fused} in chunks of" in out  # the start-up line says which path runs
    if model_name == "ebt":  # the loss after each thinking step is reported
        assert read_metrics(run_dir)("valid_loss_step_2")
    # cumulative tokens and training FLOPs, for curves against compute: linear in the step
    tokens, flops = read_metrics(run_dir)("train_tokens"), read_metrics(run_dir)("train_flops")
    assert tokens and set(tokens) == set(flops)
    per_step = 8 * 32  # batch 8 rows of 32 predicted tokens (TINY)
    assert sorted(tokens.values()) == [per_step * (i + 1) for i in range(len(tokens))]
    ratios = {round(flops[s] / tokens[s]) for s in tokens}
    assert len(ratios) == 1 and ratios.pop() > 0  # FLOPs per token is the model's constant estimate


def test_resumed_run_repeats_the_uninterrupted_one(tmp_path, corpus):
    common = ["--val_check_interval", "8", "--mcmc_step_size", "5", "--mcmc_step_size_lr_multiplier", "15",
              "--max_scheduling_steps", "16"]
    full = run(tmp_path, corpus, *common, "--max_steps", "16", name="full")
    first = run(tmp_path, corpus, *common, "--max_steps", "8", name="first")
    resumed = run(tmp_path, corpus, *common, "--max_steps", "16", "--resume_training_ckpt",
                  os.path.join(first, "checkpoints", "last.ckpt"), name="resumed")
    full_loss, resumed_loss = read_metrics(full)("train_loss"), read_metrics(resumed)("train_loss")
    later = [s for s in full_loss if s >= 8]
    assert later and all(s in resumed_loss for s in later)
    for s in later:
        assert resumed_loss[s] == pytest.approx(full_loss[s], rel=1e-5, abs=1e-6)


def test_resuming_from_a_file_that_cannot_continue_the_run_stops_with_one_line(tmp_path, corpus, capsys):
    run_dir = run(tmp_path, corpus, "--max_steps", "6", "--val_check_interval", "6", "--mcmc_step_size", "5",
                  name="first")
    checkpoint = os.path.join(run_dir, "checkpoints", "last.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(open(checkpoint, "rb").read()[:1000])
    capsys.readouterr()  # the training run's own output
    for resume, extra, message in [
            (str(text), [], "is not a checkpoint of this project"),
            (str(truncated), [], "is not a checkpoint of this project"),
            (checkpoint, ["--model_name", "baseline_transformer"],
             "it is a --model_name ebt checkpoint and this run has --model_name baseline_transformer"),
            (checkpoint, ["--override_embedding_dim", "48"], "it was trained with embedding_dim 32, this run has 48"),
            (checkpoint, ["--mcmc_step_size", "7"], "it was trained with mcmc_step_size 5.0, this run has 7.0"),
            (checkpoint, ["--max_steps", "6"], "the checkpoint is at step 6 and --max_steps is 6: nothing left"),
            (checkpoint, ["--max_steps", "12"], "pass --max_scheduling_steps 6 to continue it")]:
        thinking = [] if "baseline_transformer" in extra else ["--mcmc_step_size", "5"]
        schedule = [] if "--max_steps" in extra else ["--max_steps", "12", "--max_scheduling_steps", "6"]
        argv = tiny_run(*thinking, *schedule, *extra, "--dataset_dir", corpus, "--log_dir", str(tmp_path / "resumed"),
                        "--resume_training_ckpt", resume)
        assert train_model.main(argv) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (tmp_path / "resumed").exists()


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temporary file left behind


def test_system2_recipe_trains_without_nans_and_checkpoints_its_replay_buffer(tmp_path, corpus, capsys):
    run_dir = run(tmp_path, corpus, "--mcmc_step_size", "5", "--no-mcmc_step_size_learnable",
                  "--randomize_mcmc_step_size_scale", "2", "--mcmc_num_steps", "1", "--randomize_mcmc_num_steps", "2",
                  "--randomize_mcmc_num_steps_min", "2", "--langevin_dynamics_noise", "3.0", "--no_mcmc_detach",
                  "--truncate_mcmc", "--mcmc_replay_buffer", "--max_steps", "40", "--val_check_interval", "20",
                  "--peak_learning_rate", "0.01", name="s2")
    assert "vocabulary loss: plain autograd, because --no_mcmc_detach" in capsys.readouterr().out
    metrics = read_metrics(run_dir)
    train, valid = metrics("train_loss"), metrics("valid_loss")
    assert all(map(torch.isfinite, torch.tensor(list(train.values()))))
    assert valid[max(valid)] < valid[min(valid)]
    assert metrics("valid_loss_step_3")  # evaluation thinks for the maximum, 3 steps
    state = torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), weights_only=False)["state_dict"]
    assert int(state["model.replay_buffer.count"]) == 40 * 8


def test_wandb_offline_run_logs_next_to_the_local_files(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    log_dir = tmp_path / "logs"
    argv = [a for a in tiny_run() if a != "--no_wandb"]
    assert train_model.main(argv + ["--dataset_dir", corpus, "--log_dir", str(log_dir), "--max_steps", "6",
                                    "--val_check_interval", "3", "--wandb_watch", "--log_gradients"]) == 0
    (run_dir,) = glob.glob(str(log_dir / "quickstart" / "*"))
    assert glob.glob(os.path.join(run_dir, "wandb", "offline-run-*"))  # the W&B run, synced later by the user
    assert os.path.isfile(os.path.join(run_dir, "metrics.csv"))
    assert read_metrics(run_dir)("avg_gradient_norms") and read_metrics(run_dir)("pct_gradient_clipped")


def test_two_process_ddp_run_on_cpu(tmp_path, corpus):
    """Two gloo processes: the run finishes, replicas end identical, rank 0 alone writes the run folder."""
    import subprocess
    import sys

    log_dir = tmp_path / "logs"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "train_model.py", *tiny_run(), "--dataset_dir", corpus, "--log_dir",
                             str(log_dir), "--num_cpu_processes", "2", "--max_steps", "6", "--val_check_interval", "3",
                             "--mcmc_step_size", "5", "--mcmc_step_size_lr_multiplier", "15"],
                            cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("parameters identical on 2 ranks") == 1
    assert result.stdout.count("validation (token-weighted)") == 1  # the report comes from rank 0 only
    (run_dir,) = glob.glob(str(log_dir / "quickstart" / "*"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    assert max(read_metrics(run_dir)("train_loss")) == 5  # rank 0 logged global steps 0..5


def train_subprocess(log_dir, *argv):
    """A train_model.py run in its own process (several ranks need one); its run folder."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "train_model.py", *argv, "--log_dir", str(log_dir)], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = glob.glob(str(log_dir / "*" / "*"))
    return run_dir


def final_weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.ckpt"), weights_only=False)["state_dict"]


def assert_same_weights(state, expected, atol, rtol=0.0):
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(state[name], value, rtol=rtol, atol=atol, msg=name)


# deterministic thinking (zero initial guess, no random step sizes or noise), with an S2 option
DETERMINISTIC_EBT = ["--mcmc_step_size", "5", "--denoising_initial_condition", "zeros", "--no_mcmc_detach"]


@pytest.mark.parametrize("model_flags", [["--model_name", "baseline_transformer"], DETERMINISTIC_EBT],
                         ids=["transformer++", "ebt"])
def test_two_process_ddp_and_fsdp_training_equal_one_process_on_the_same_global_batch(tmp_path, corpus, model_flags):
    """2 gloo processes of 4 rows per step train what 1 process of 8 rows does, under DDP and under FSDP2: the
    batch sampler gives rank r the batches r, r+2, ... of the one-process order, the gradients of the two halves
    are averaged, and every row has the same number of target tokens. After 3 optimizer steps every parameter
    agrees up to float32 rounding of the gradient sums, grown by 3 Adam steps of lr 0.01: Adam divides by the
    gradient's own scale, so an entry whose gradient is nearly cancelled turns its relative rounding into a
    visible step (one AMD EPYC machine moved one of 8256 embedding entries by 1.4e-5). 5e-5 is far below what a
    wrong reduction moves (about lr = 1e-2 per step); tests/test_sharding.py compares the gradients themselves,
    which Adam's scale invariance would hide."""
    def train(name, processes, batch, *extra):
        return train_subprocess(tmp_path / name, *tiny_run(
            *model_flags, "--dataset_dir", corpus, "--max_steps", "3", "--warm_up_steps", "1",
            "--val_check_interval", "3", "--limit_val_batches", "1", "--peak_learning_rate", "0.01",
            "--batch_size_per_device", str(batch), "--num_cpu_processes", str(processes), *extra))

    expected = final_weights(train("one", 1, 8))
    for strategy in ("ddp", "fsdp"):
        assert_same_weights(final_weights(train(strategy, 2, 4, "--distributed_strategy", strategy)), expected,
                            atol=5e-5)


@pytest.mark.slow
def test_fsdp_checkpoints_resume_exactly_and_load_in_one_process(tmp_path, corpus):
    """An FSDP run's checkpoints are one ordinary file: a 2-process FSDP run resumed from step 2 ends where the
    uninterrupted one does, and the result loads in a 1-process --only_test run and in text generation."""
    from inference.nlp.generate_text import generate
    from model.registry import load_trained_model

    argv = tiny_run(*DETERMINISTIC_EBT, "--dataset_dir", corpus, "--warm_up_steps", "1", "--max_scheduling_steps",
                    "4", "--val_check_interval", "2", "--limit_val_batches", "1", "--peak_learning_rate", "0.01",
                    "--batch_size_per_device", "4", "--num_cpu_processes", "2", "--distributed_strategy", "fsdp")
    uninterrupted = train_subprocess(tmp_path / "whole", *argv, "--max_steps", "4")
    first = train_subprocess(tmp_path / "first", *argv, "--max_steps", "2")
    resumed = train_subprocess(tmp_path / "resumed", *argv, "--max_steps", "4", "--resume_training_ckpt",
                               os.path.join(first, "checkpoints", "last.ckpt"))
    assert_same_weights(final_weights(resumed), final_weights(uninterrupted), atol=1e-6)
    # the optimizer's state resumes too: without it the moments restart and the weights part at step 3
    checkpoint = os.path.join(uninterrupted, "checkpoints", "last.ckpt")
    report_dir = train_subprocess(tmp_path / "test", "--only_test", "--only_test_model_ckpt", checkpoint,
                                  "--limit_test_batches", "2", "--no_wandb")
    with open(os.path.join(report_dir, "test_report.json")) as f:
        assert json.load(f)["test_loss"] > 0
    model, _ = load_trained_model(checkpoint)
    tokens, _ = generate(model, torch.tensor([[75, 73, 78, 71]]), max_new_tokens=5)
    assert tokens.shape == (1, 9)


def test_evaluation_shards_count_every_row_once():
    from data.samplers import EvaluationShardSampler

    shards = [list(EvaluationShardSampler(10, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(10)) and [len(s) for s in shards] == [4, 3, 3]
    assert list(EvaluationShardSampler(5)) == list(range(5))  # one process: the split in order


def test_two_process_evaluation_equals_one_process(tmp_path, corpus):
    """Each held-out row is evaluated once across ranks (no padding rows), so the token-weighted test loss of
    a 2-process run equals the single-process one on a split of odd length. The Transformer++: an EBT's initial
    guesses are seeded per (batch, rank), so its losses move with the sharding by the thinking noise alone."""
    import json
    import subprocess
    import sys

    from base_model_trainer import ModelTrainer

    run_dir = run(tmp_path, corpus, "--model_name", "baseline_transformer", "--max_steps", "40",
                  "--val_check_interval", "40", "--peak_learning_rate", "0.01", name="trained")
    checkpoint = os.path.join(run_dir, "checkpoints", "last.ckpt")
    hp = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    # a few rows, an odd number: a padded sampler would count one of them twice in the mean
    split = next(pct for pct in ("0.001", "0.0013", "0.0016", "0.0019", "0.0022", "0.0025")
                 if len(ModelTrainer(dict(hp, validation_split_pct=float(pct))).task.splits(None, "test")[2]) % 2)
    argv = ["--only_test", "--only_test_model_ckpt", checkpoint, "--validation_split_pct", split,
            "--batch_size_per_device", "2", "--no_wandb"]
    reports = {}
    for processes in (1, 2):
        log_dir = tmp_path / f"eval{processes}"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        result = subprocess.run([sys.executable, "train_model.py", *argv, "--log_dir", str(log_dir),
                                 "--num_cpu_processes", str(processes)], cwd=root, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        (report,) = glob.glob(str(log_dir / "*" / "*" / "test_report.json"))
        with open(report) as f:
            reports[processes] = json.load(f)
    assert reports[1].keys() == reports[2].keys()
    for key, value in reports[1].items():
        assert reports[2][key] == pytest.approx(value, rel=1e-6), key


def test_debug_dataloader_iterates_the_training_set_once_and_trains_nothing(tmp_path, corpus, capsys):
    log_dir = tmp_path / "logs"
    assert train_model.main(tiny_run("--debug_dataloader", "--dataset_dir", corpus, "--log_dir", str(log_dir))) == 0
    out = capsys.readouterr().out
    assert "text: " in out and " batches, " in out and "longest row 33 tokens" in out
    assert not log_dir.exists()


def test_debug_unused_parameters_names_parameters_without_gradients(tmp_path, corpus, capsys, monkeypatch):
    import gc

    collections = []
    monkeypatch.setattr(gc, "collect", lambda: collections.append(1))
    run(tmp_path, corpus, "--max_steps", "6", "--val_check_interval", "6", "--debug_unused_parameters",
        "--manual_gc_collect_every_n_steps", "2", "--ebt_type", "default")
    out = capsys.readouterr().out
    assert "step 0: parameters without a gradient: none" in out  # every trainable parameter is used
    assert len(collections) == 3  # steps 2, 4, 6


@pytest.mark.parametrize("modality, flags, expected", [
    ("IMG", ["--dataset_name", "mnist", "--image_task", "denoising", "--patch_size", "4"],
     "mnist: 307 batches, 4900 samples of shape (3, 16, 16)"),
    ("VID", ["--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--context_length", "7"],
     "moving_mnist: 625 batches, 10000 samples of shape (8, 3, 16, 16)")])
def test_debug_dataloader_for_images_and_video(tmp_path, capsys, modality, flags, expected):
    assert train_model.main(["--debug_dataloader", "--modality", modality, *flags, "--image_dims", "16", "16",
                             "--validation_split_pct", "0.01", "--num_workers", "0", "--batch_size_per_device", "16",
                             "--log_dir", str(tmp_path / "logs")]) == 0
    assert expected in capsys.readouterr().out
    assert not (tmp_path / "logs").exists()
