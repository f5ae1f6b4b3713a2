"""The train_model.py command line a job script runs, expanded by bash itself (arrays, defaults, "$@")."""
import functools
import os
import shlex
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def job_script_argv(script, *extra, env=None):
    """Arguments after `python train_model.py` in `script` (relative to the repository), with `extra` appended
    as a user would pass them. A stand-in `python` on PATH records them, so nothing is trained; the script runs
    in a scratch folder, so its `mkdir -p logs/...` leaves no trace."""
    with tempfile.TemporaryDirectory() as scratch:
        record = os.path.join(scratch, "argv")
        shim = os.path.join(scratch, "bin", "python")
        os.makedirs(os.path.dirname(shim))
        with open(shim, "w") as f:
            f.write(f'#!/bin/sh\nprintf "%s\\0" "$@" > {shlex.quote(record)}\n')
        os.chmod(shim, 0o755)
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        run_env.update(env or {}, PATH=os.path.dirname(shim) + os.pathsep + os.environ["PATH"])
        done = subprocess.run(["bash", os.path.join(ROOT, script), *extra], cwd=scratch, env=run_env,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{script}: {done.stderr}"
        with open(record) as f:
            argv = f.read().split("\0")[:-1]
    assert argv and argv[0] == "train_model.py", f"{script} does not run train_model.py: {argv[:1]}"
    return argv[1:]


@functools.cache
def _quickstart(model_name):
    return tuple(job_script_argv("job_scripts/quickstart.sh", env={"MODEL_NAME": model_name}))


def quickstart_argv(model_name="ebt"):
    """The quickstart recipe's command line (job_scripts/quickstart.sh): the tests' base NLP run."""
    return list(_quickstart(model_name))
