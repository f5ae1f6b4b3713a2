"""What the experiment scripts share: running training commands side by side, finding a run's newest folder."""
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_training_arguments(parser, seeds=(33, 34), reuse_runs=False):
    """--seeds, --jobs and (when asked) --reuse_runs: what every experiment that trains shares."""
    from utils.usage import whole_number

    parser.add_argument("--seeds", type=whole_number(0, 2**32 - 1), nargs="+", default=list(seeds))
    parser.add_argument("--jobs", type=whole_number(1), default=None,
                        help="trainings side by side (default: 2 on 2+ cores)")
    if reuse_runs:
        parser.add_argument("--reuse_runs", action="store_true",
                            help="evaluate models already trained to the end under --out_dir instead of training them "
                                 "again (e.g. to add a seed)")


def default_jobs():
    return max(1, min(2, os.cpu_count() or 1))


def run_commands(commands, log_dir, jobs=None, reuse_finished_in=None):
    """Run {name: argv} from the repository root, `jobs` at a time, each with cores // jobs threads (small models
    use 2 single-threaded processes better than one with 2 threads), output to <log_dir>/<name>.log. With
    `reuse_finished_in` (a runs folder), runs that already finished there (finished_run) are skipped.
    Raises SystemExit naming the failed run with the end of its log."""
    if reuse_finished_in:
        commands = {name: argv for name, argv in commands.items() if not finished_run(reuse_finished_in, name)}
    jobs = jobs or default_jobs()
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    os.makedirs(log_dir, exist_ok=True)
    pending, running, failed = list(commands.items()), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            name, argv = pending.pop(0)
            log = open(os.path.join(log_dir, f"{name}.log"), "w")
            print(f"[{time.strftime('%H:%M:%S')}] start {name}: {' '.join(argv)}", flush=True)
            running[name] = (subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(0.5)
        for name, (process, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            print(f"[{time.strftime('%H:%M:%S')}] done  {name} (status {process.returncode})", flush=True)
            if process.returncode != 0:
                failed.append(name)
    if failed:
        with open(os.path.join(log_dir, f"{failed[0]}.log")) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"training failed: {', '.join(failed)} (logs in {log_dir}); the end of {failed[0]}'s:\n{tail}")


def newest_run(log_dir, run_name):
    """The newest <log_dir>/<run_name>/<time> folder."""
    runs = os.path.join(log_dir, run_name)
    return max(os.path.join(runs, d) for d in os.listdir(runs))


def finished_run(log_dir, run_name):
    """The newest folder of a run that ran to its end (its final plot is written last), else None."""
    if not os.path.isdir(os.path.join(log_dir, run_name)):
        return None
    run_dir = newest_run(log_dir, run_name)
    done = all(os.path.isfile(os.path.join(run_dir, f)) for f in ("training_curves.png", "checkpoints/last.ckpt"))
    return run_dir if done else None
