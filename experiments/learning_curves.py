"""Claim 1, "EBTs scale faster in data": learning curves and a data-scaling sweep, EBT (System 1) against the
Transformer++ of the same size on the same data.

Trains both quickstart models (4xs, bytes, bundled Shakespeare, batch 32 of 64-byte rows) through
train_model.py at several data budgets (optimizer steps; warm-up 10% of each budget and the cosine decay ending
with it, so each budget is a finished run), for several seeds. For each model the final validation loss L of a
budget of D tokens is fitted as a power law, log L = log a - b log D; the paper's "scaling rate" is b and it
reports the EBT's relative to the Transformer++'s, b_EBT / b_T++ - 1 (about +36% in data). The largest
budget's validation curve, against tokens and against FLOPs (`estimate_flops`), is the learning-curve plot.

Writes <out>/learning_curves.{csv,json,png} and <out>/data_scaling.{csv,json,png}.

    python experiments/learning_curves.py              # budgets 100..800 steps, 2 seeds: ~25 min on 2 cores
    python experiments/learning_curves.py --smoke      # seconds
"""
import argparse
import csv
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from utils.usage import Parser, UsageError, check, output_path_problem, run_entry_point, whole_number  # noqa: E402

MODELS = {"EBT": "ebt", "Transformer++": "baseline_transformer"}
PAPER_RELATIVE_DATA_SCALING = 35.98  # percent higher scaling rate of the EBT in data (paper, Fig. 4)
QUICKSTART = "job_scripts/quickstart.sh"  # the recipe of both models; MODEL_NAME picks one
SMOKE_MODEL = ["--override_embedding_dim", "32", "--context_length", "16", "--limit_val_batches", "2"]


def read_curve(run_dir):
    """[(step, tokens, flops, valid_loss)] of a run: validation losses placed at the tokens/FLOPs of their step."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    tokens = {int(r["step"]): float(r["train_tokens"]) for r in rows if r.get("train_tokens")}
    flops = {int(r["step"]): float(r["train_flops"]) for r in rows if r.get("train_flops")}
    # a validation inside the loop shares its step with the training log of that step (after 100 optimizer steps:
    # step 99); the validation after training is logged at the global step (after 100 steps: step 100)
    curve = {}
    for r in rows:
        if r.get("valid_loss"):
            logged = int(r["step"])
            done = logged + 1 if logged in tokens else logged
            if done - 1 in tokens:
                curve[done] = (done, tokens[done - 1], flops[done - 1], float(r["valid_loss"]))
    return [curve[s] for s in sorted(curve)]


def run_name(label, steps, seed):
    return f"{MODELS[label]}_steps{steps}_seed{seed}"


def train_command(label, steps, seed, log_dir, smoke):
    """train_model.py for one finished run of `steps` optimizer steps."""
    schedule = ["--max_steps", str(steps), "--warm_up_steps", str(max(1, steps // 10)),
                "--val_check_interval", str(min(steps, 100)), "--seed", str(seed)]
    smoke_flags = SMOKE_MODEL + (["--mcmc_step_size", "5"] if MODELS[label] == "ebt" else []) if smoke else []
    return ["env", f"MODEL_NAME={MODELS[label]}", "bash", QUICKSTART, "--run_name", run_name(label, steps, seed),
            "--log_dir", log_dir, "--no_wandb", "--log_every_n_steps", "1" if smoke else "10", *schedule, *smoke_flags]


def fit_power_law(tokens, losses):
    """(b, a) of L = a * D^-b by least squares in log-log space."""
    slope, intercept = np.polyfit(np.log(tokens), np.log(losses), 1)
    return float(-slope), float(np.exp(intercept))


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/learning_curves")
    parser.add_argument("--budgets", type=whole_number(1), nargs="+", default=[100, 200, 400, 800],
                        help="data budgets in optimizer steps (2048 tokens each)")
    add_training_arguments(parser)
    parser.add_argument("--smoke", action="store_true", help="a tiny model, budgets of 2 and 4 steps (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    budgets, seeds = ([2, 4], [33]) if args.smoke else (sorted(set(args.budgets)), args.seeds)
    if len(budgets) < 2:
        raise UsageError("--budgets: a scaling rate needs at least two different budgets")
    log_dir = os.path.join(args.out_dir, "runs")
    runs = [(label, steps, seed) for steps in reversed(budgets) for seed in seeds for label in MODELS]  # longest first
    run_commands({run_name(*run): train_command(*run, log_dir, args.smoke) for run in runs},
                 os.path.join(args.out_dir, "logs"), args.jobs)
    finals, curves = [], {}
    for seed in seeds:
        for steps in budgets:
            for label in MODELS:
                curve = read_curve(newest_run(log_dir, run_name(label, steps, seed)))
                step, tokens, flops, loss = curve[-1]
                finals.append({"model": label, "seed": seed, "steps": step, "tokens": tokens, "flops": flops,
                               "valid_loss": loss})
                if seed == seeds[0] and steps == budgets[-1]:
                    curves[label] = curve
    scaling = summarize(finals, seeds)
    write(curves, finals, scaling, args.out_dir)
    return {"curves": curves, "finals": finals, "scaling": scaling}


def summarize(finals, seeds):
    """Per model: the fitted exponent b for each seed and for the seed-mean losses; the EBT's relative rate."""
    out = {"models": {}}
    for label in MODELS:
        rows = [r for r in finals if r["model"] == label]
        per_seed = [fit_power_law([r["tokens"] for r in rows if r["seed"] == s],
                                  [r["valid_loss"] for r in rows if r["seed"] == s])[0] for s in seeds]
        budgets = sorted({r["tokens"] for r in rows})
        mean_loss = [statistics.mean(r["valid_loss"] for r in rows if r["tokens"] == t) for t in budgets]
        b, a = fit_power_law(budgets, mean_loss)
        out["models"][label] = {"b": b, "a": a, "b_per_seed": per_seed, "tokens": budgets, "mean_loss": mean_loss}
    ebt, tpp = out["models"]["EBT"], out["models"]["Transformer++"]
    out["relative_rate_percent"] = 100 * (ebt["b"] / tpp["b"] - 1)
    out["relative_rate_percent_per_seed"] = [100 * (e / t - 1) for e, t in zip(ebt["b_per_seed"], tpp["b_per_seed"])]
    return out


def write(curves, finals, scaling, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "learning_curves.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "step", "tokens", "flops", "valid_loss"])
        for label, curve in curves.items():
            writer.writerows([label, *point] for point in curve)
    with open(os.path.join(out_dir, "learning_curves.json"), "w") as f:
        json.dump(curves, f, indent=1)
    with open(os.path.join(out_dir, "data_scaling.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(finals[0]))
        writer.writeheader()
        writer.writerows(finals)
    with open(os.path.join(out_dir, "data_scaling.json"), "w") as f:
        json.dump({"finals": finals, "scaling": scaling}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for label, curve in curves.items():
        _, tokens, flops, loss = zip(*curve)
        axes[0].plot(tokens, loss, marker="o", label=label)
        axes[1].plot(flops, loss, marker="o", label=label)
    for ax, what in zip(axes, ("training tokens", "training FLOPs (estimate)")):
        ax.set_xscale("log")
        ax.set_xlabel(what)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats / byte)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "learning_curves.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (label, fit), color in zip(scaling["models"].items(), ("C0", "C1")):
        rows = [r for r in finals if r["model"] == label]
        ax.scatter([r["tokens"] for r in rows], [r["valid_loss"] for r in rows], color=color, alpha=0.5)
        grid = np.geomspace(min(fit["tokens"]), max(fit["tokens"]), 50)
        ax.plot(grid, fit["a"] * grid ** -fit["b"], color=color, label=f"{label}: L ~ D^-{fit['b']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens D (each a finished run)")
    ax.set_ylabel("final validation loss L")
    ax.set_title(f"EBT scaling rate relative to T++: {scaling['relative_rate_percent']:+.1f}%")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "data_scaling.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run_entry_point(main)
