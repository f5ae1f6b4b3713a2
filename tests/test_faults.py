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
