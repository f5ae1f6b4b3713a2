"""Faults a run survives: divergence stops it without spoiling a checkpoint; nothing logged is lost on resume;
a run folder belongs to one run; interrupted checkpoint writes leave nothing behind; signals checkpoint."""
import glob
import os

import pytest
import torch
from test_training import read_metrics, tiny_run

import base_model_trainer
import train_model


def train(tmp_path, corpus, *extra, name="run"):
    """(exit status, run folder or None) of a tiny in-process run."""
    log_dir = tmp_path / "logs"
    thinking = [] if "baseline_transformer" in extra else ["--mcmc_step_size", "5"]
    status = train_model.main(tiny_run("--dataset_dir", corpus, "--log_dir", str(log_dir), "--run_name", name,
                                       *thinking, *extra))
    folders = glob.glob(str(log_dir / name / "*"))
    return status, (folders[0] if len(folders) == 1 else None)


def spoil_from_step(monkeypatch, step, spoil):
    """From optimizer step `step` on, the batch's output (a dict) goes through `spoil`."""
    forward_batch = base_model_trainer.ModelTrainer.forward_batch

    def spoiled(self, batch, phase, at):
        out = forward_batch(self, batch, phase, at)
        return spoil(self, out) if phase == "train" and self.global_step >= step else out

    monkeypatch.setattr(base_model_trainer.ModelTrainer, "forward_batch", spoiled)


def finite(checkpoint):
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("spoil, message", [
    (lambda self, out: dict(out, loss=out["loss"] * float("nan")),
     "training diverged at step 4: the loss is nan: lower --peak_learning_rate"),
    (lambda self, out: dict(out, loss=out["loss"] * 1e31), "e+31: lower --peak_learning_rate"),
    (lambda self, out: dict(out, step_energies=out["step_energies"] * float("inf")),
     "the energy ran away (each step's: inf, inf; alpha ")],
    ids=["nan-loss", "exploding-loss", "exploding-energy"])
def test_a_diverging_run_stops_naming_the_step_and_the_last_good_checkpoint(tmp_path, corpus, monkeypatch, capsys,
                                                                           spoil, message):
    spoil_from_step(monkeypatch, 4, spoil)
    status, run_dir = train(tmp_path, corpus, "--max_steps", "8", "--val_check_interval", "2")
    assert status == 1
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    err = capsys.readouterr().err
    assert message in err and f"the last good checkpoint is {last}" in err
    assert torch.load(last, weights_only=False)["global_step"] == 4 and finite(last)
    assert max(read_metrics(run_dir)("train_loss")) == 3  # the diverged step is not logged


def test_weights_that_stop_being_finite_are_never_checkpointed(tmp_path, corpus, monkeypatch, capsys):
    def poison(self, out):  # the update of step 3 writes a NaN into the weights: the loss of step 3 is fine
        with torch.no_grad():
            self.model.embeddings.weight[0, 0] = float("nan")
        return out

    spoil_from_step(monkeypatch, 3, poison)
    status, run_dir = train(tmp_path, corpus, "--max_steps", "8", "--val_check_interval", "2",
                            "--model_name", "baseline_transformer")
    assert status == 1
    assert "the weights are no longer finite numbers" in capsys.readouterr().err
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] == 2 and finite(last)
    assert all(finite(path) for path in glob.glob(os.path.join(run_dir, "checkpoints", "*.ckpt")))


def test_runs_that_start_together_get_a_folder_each_and_a_reused_slurm_id_stops(tmp_path):
    from argparse import Namespace

    from utils.cli import UsageError

    args = Namespace(log_dir=str(tmp_path), run_name="r", is_slurm_run=True)
    folders = {train_model.claim_run_folder(args, {})[0] for _ in range(3)}  # the same second: mkdir decides
    assert train_model.claim_run_folder(Namespace(log_dir=str(tmp_path / "a" / "b"), run_name="r"), {})[1] == [
        str(tmp_path / "a"), str(tmp_path / "a" / "b"), str(tmp_path / "a" / "b" / "r")] + \
        glob.glob(str(tmp_path / "a" / "b" / "r" / "*"))
    assert len(folders) == 3 and all(os.path.isdir(f) for f in folders)
    slurm = {"SLURM_JOB_ID": "77"}
    job_dir, made, rank_zero = train_model.claim_run_folder(args, slurm)
    assert made == [job_dir] and rank_zero and job_dir == str(tmp_path / "r" / "job77")
    with open(os.path.join(job_dir, "metrics.csv"), "w") as f:
        f.write("step,train_loss\n0,5.0\n")
    with pytest.raises(UsageError, match="already holds a run of this Slurm job id and no pre-emption checkpoint"):
        train_model.claim_run_folder(args, slurm)
    # the requeued job itself continues there, and its interrupted writes are cleaned away
    for partial in ("hpc_ckpt_1.ckpt", ".tmp_abc.ckpt", os.path.join("checkpoints", ".tmp_def.ckpt")):
        os.makedirs(os.path.dirname(os.path.join(job_dir, partial)), exist_ok=True)
        open(os.path.join(job_dir, partial), "w").close()
    assert train_model.claim_run_folder(args, slurm) == (job_dir, [], True)
    assert sorted(os.listdir(job_dir)) == ["checkpoints", "hpc_ckpt_1.ckpt", "metrics.csv"]
    assert os.listdir(os.path.join(job_dir, "checkpoints")) == []


def test_a_run_that_stops_at_start_up_leaves_no_folder(tmp_path, corpus):
    status, run_dir = train(tmp_path, corpus, "--tokenizer", "no/such-tokenizer")
    assert status == 2 and run_dir is None
    assert not glob.glob(str(tmp_path / "logs" / "*" / "*"))


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_writes_a_final_checkpoint_that_resumes_exactly(tmp_path, corpus, monkeypatch, capsys, signal_name):
    import signal

    common = ["--val_check_interval", "12", "--max_scheduling_steps", "12"]
    _, uninterrupted = train(tmp_path, corpus, *common, "--max_steps", "12", name="whole")

    def send(self, out):
        if not getattr(self, "_signalled", False):
            self._signalled = True
            os.kill(os.getpid(), getattr(signal, signal_name))
        return out

    with monkeypatch.context() as patch:
        spoil_from_step(patch, 5, send)
        status, stopped = train(tmp_path, corpus, *common, "--max_steps", "12", name="stopped")
    last = os.path.join(stopped, "checkpoints", "last.ckpt")
    assert status == 128 + getattr(signal, signal_name)
    assert f"stopped by {signal_name} after step 6; its state is in {last}" in capsys.readouterr().err
    assert torch.load(last, weights_only=False)["global_step"] == 6
    _, resumed = train(tmp_path, corpus, *common, "--max_steps", "12", "--resume_training_ckpt", last, name="resumed")
    expected, got = read_metrics(uninterrupted)("train_loss"), read_metrics(resumed)("train_loss")
    assert sorted(got) == list(range(6, 12))
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6)


def test_a_full_disk_at_checkpoint_time_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, corpus,
                                                                                           monkeypatch, capsys):
    from utils import checkpointing

    saves, real_save = [], torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):  # not a checkpoint write (those go to an open temporary file)
            return real_save(obj, f, *args, **kwargs)
        saves.append(1)
        if len(saves) > 2:  # the third write meets a full disk, half-way through, as torch reports it
            f.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                               "data/3: file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpointing.torch, "save", save)
    status, run_dir = train(tmp_path, corpus, "--max_steps", "8", "--val_check_interval", "2")
    assert status == 1
    err = capsys.readouterr().err
    last = os.path.join(run_dir, "checkpoints", "last.ckpt")
    assert "could not write the checkpoint" in err and "the disk is full" in err
    assert f"the last written checkpoint is {last}" in err and "Traceback" not in err
    assert torch.load(last, weights_only=False)["global_step"] == 2 and finite(last)
    assert not glob.glob(os.path.join(run_dir, "**", ".tmp_*"), recursive=True)
