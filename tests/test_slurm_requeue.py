"""Pre-emption under Slurm: SIGUSR1 writes an hpc checkpoint into the run folder and requeues the job; the
requeued job (same job id) resumes from it in the same folder."""
import csv
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from job_script_argv import quickstart_argv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_sigusr1_checkpoints_requeues_and_the_restart_resumes(tmp_path, corpus):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/scontrol.log\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="4242", SLURM_ARRAY_JOB_ID="4242",
               SLURM_ARRAY_TASK_ID="0", SLURM_NTASKS="1", SLURM_JOB_NAME="ebt_s1", SLURM_PROCID="0",
               SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_NODELIST="node1", WANDB_MODE="disabled")
    argv = [sys.executable, "train_model.py", *quickstart_argv(), "--dataset_name", "text", "--dataset_dir", corpus, "--model_size", "4xs",
            "--context_length", "16", "--batch_size_per_device", "4", "--max_steps", "400", "--warm_up_steps", "5",
            "--val_check_interval", "400", "--limit_val_batches", "2", "--no_wandb", "--log_every_n_steps", "1",
            "--log_dir", str(tmp_path / "logs"), "--is_slurm_run"]
    run_dir = tmp_path / "logs" / "quickstart" / "job4242_0"
    first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").exists() and time.time() < deadline:  # training has started
        time.sleep(0.5)
    time.sleep(3)
    first.send_signal(signal.SIGUSR1)
    deadline = time.time() + 60
    while not glob.glob(str(run_dir / "hpc_ckpt_*.ckpt")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # let the requeue command run
    first.kill()  # what Slurm does to the pre-empted job
    first.wait()
    (checkpoint,) = glob.glob(str(run_dir / "hpc_ckpt_*.ckpt"))
    interrupted_at = torch.load(checkpoint, weights_only=False)["global_step"]
    assert 0 < interrupted_at < 400
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242_0"]  # array job 4242, task 0

    second = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Restored all states from the checkpoint" in second.stderr + second.stdout
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 400
    assert (run_dir / "console.log").read_text().count("run folder:") == 2  # the first attempt's log is kept
    # metrics.csv keeps the first attempt's rows: each step's training loss once, from step 0 to the end
    # (the last step's row may carry step 400)
    with open(run_dir / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train_loss")]
    assert len(steps) == len(set(steps)) and set(range(400)) <= set(steps) <= set(range(401))

    # a later job under the same id (Slurm reuses them) stops instead of overwriting this run
    before = (run_dir / "metrics.csv").read_bytes()
    assert not glob.glob(str(run_dir / "hpc_ckpt_*.ckpt"))  # consumed by the finished run
    third = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 2 and "already holds a run of this Slurm job id" in third.stderr
    assert (run_dir / "metrics.csv").read_bytes() == before
