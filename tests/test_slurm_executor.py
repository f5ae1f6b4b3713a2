"""slurm_executor.sh: header + job script submitted with sbatch (faked here), or run with bash; always recorded."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = """#!/bin/bash
#SBATCH --job-name=tiny
#SBATCH --gpus-per-node=1
echo "job ran with $@" > job_output.txt
"""


@pytest.fixture
def workdir(tmp_path):
    """A copy of the executor and the headers, a tiny job script, and a fake sbatch that keeps its input."""
    shutil.copy(os.path.join(ROOT, "slurm_executor.sh"), tmp_path)
    shutil.copytree(os.path.join(ROOT, "job_scripts", "slurm_headers"), tmp_path / "job_scripts" / "slurm_headers")
    (tmp_path / "job.sh").write_text(JOB)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\ncp "$1" "$(dirname "$0")/submitted.slurm"\n'
                                    'shift\necho "$@" > "$(dirname "$0")/submitted_args"\n'
                                    'echo "Submitted batch job 1234"\n')
    (bin_dir / "sbatch").chmod(0o755)
    return tmp_path


def run(workdir, *args, env_changes=None, sbatch=True):
    env = dict(os.environ, VIRTUAL_ENV="/some/venv")
    env.pop("CONDA_PREFIX", None)
    env["PATH"] = (f"{workdir / 'bin'}:" if sbatch else "") + "/usr/bin:/bin"
    env.update(env_changes or {})
    return subprocess.run(["bash", "slurm_executor.sh", *args], cwd=workdir, env=env, capture_output=True, text=True)


def test_header_and_job_script_are_submitted_together_and_recorded(workdir):
    result = run(workdir, "reference_a100", "job.sh", "--max_steps", "5")
    assert result.returncode == 0, result.stderr
    assert "Submitted batch job 1234" in result.stdout
    submitted = (workdir / "bin" / "submitted.slurm").read_text()
    assert submitted.startswith("#!/bin/bash")
    assert submitted.index("#SBATCH --account=allocation_name") < submitted.index("#SBATCH --job-name=tiny")
    assert submitted.count("#!/bin/bash") == 1 and 'echo "job ran with' in submitted
    assert (workdir / "bin" / "submitted_args").read_text().strip() == "--max_steps 5"
    record = (workdir / "logs" / "job_scripts" / "executed_slurm_script_contents.log").read_text()
    assert "header: reference_a100" in record and "method: sbatch" in record and "#SBATCH --job-name=tiny" in record
    assert not list((workdir / "job_scripts").glob("temp_script_*"))  # the combined file is cleaned up


def test_without_header_the_job_runs_here_and_is_recorded(workdir):
    result = run(workdir, "job.sh", "a", "b")
    assert result.returncode == 0, result.stderr
    assert (workdir / "job_output.txt").read_text().strip() == "job ran with a b"
    record = (workdir / "logs" / "job_scripts" / "executed_slurm_script_contents.log").read_text()
    assert "header: none" in record and "method: bash" in record


@pytest.mark.parametrize("args, changes, sbatch, message", [
    (["gpu_cluster", "job.sh"], None, True, "unknown header 'gpu_cluster'; choose one of: reference_a100"),
    (["reference_a100", "missing.sh"], None, True, "no such job script: missing.sh"),
    (["reference_a100", "job.sh"], None, False, "sbatch is not on the PATH"),
    (["job.sh"], {"VIRTUAL_ENV": ""}, True, "no active environment"),
    ([], None, True, "usage: bash slurm_executor.sh [HEADER] JOB_SCRIPT"),
])
def test_errors_say_what_to_change(workdir, args, changes, sbatch, message):
    result = run(workdir, *args, env_changes=changes, sbatch=sbatch)
    assert result.returncode == 2
    assert message in result.stderr
