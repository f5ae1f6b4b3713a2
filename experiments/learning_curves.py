"""Claim (part of "EBTs scale faster"): learning curves of the EBT (System 1) and the Transformer++ of the same
size on the same data, against training tokens and against training FLOPs (`estimate_flops`).

Trains both quickstart models (4xs, bytes, bundled Shakespeare, 64-byte rows) through train_model.py and
reads their metrics.csv. Writes <out>/learning_curves.{csv,json,png}. The paper's data-scaling rates need
several model sizes and budgets (still to come); this is the same-size comparison at one budget.

    python experiments/learning_curves.py              # ~7 min on 2 CPU cores
    python experiments/learning_curves.py --smoke      # seconds
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train_model  # noqa: E402

MODELS = {"EBT": "ebt", "Transformer++": "baseline_transformer"}


def read_curve(run_dir):
    """[(step, tokens, flops, valid_loss)] of a run: validation losses placed at the tokens/FLOPs of their step."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    tokens = {int(r["step"]): float(r["train_tokens"]) for r in rows if r.get("train_tokens")}
    flops = {int(r["step"]): float(r["train_flops"]) for r in rows if r.get("train_flops")}
    # a validation inside the loop shares its step with the training log of that step (log every 10 steps and
    # validate every 100: steps 99, 199, ...); the extra validation after training repeats the last one
    return [(int(r["step"]) + 1, tokens[int(r["step"])], flops[int(r["step"])], float(r["valid_loss"]))
            for r in rows if r.get("valid_loss") and int(r["step"]) in tokens]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/learning_curves")
    parser.add_argument("--smoke", action="store_true", help="a few steps of a tiny model (seconds)")
    args = parser.parse_args(argv)
    budget = (["--max_steps", "6", "--val_check_interval", "3", "--limit_val_batches", "2", "--warm_up_steps", "1",
               "--override_embedding_dim", "32", "--context_length", "16", "--mcmc_step_size", "5"] if args.smoke else
              ["--max_steps", "1000", "--val_check_interval", "100"])
    curves = {}
    for label, model_name in MODELS.items():
        log_dir = os.path.join(args.out_dir, "runs")
        status = train_model.main(["--model_name", model_name, "--run_name", model_name, "--log_dir", log_dir,
                                   "--no_wandb", "--log_every_n_steps", "10" if not args.smoke else "1", *budget])
        if status != 0:
            raise SystemExit(f"training {label} failed (status {status})")
        run_dir = max(os.path.join(log_dir, model_name, d) for d in os.listdir(os.path.join(log_dir, model_name)))
        curves[label] = read_curve(run_dir)
    write(curves, args.out_dir)
    return curves


def write(curves, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "learning_curves.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "step", "tokens", "flops", "valid_loss"])
        for label, curve in curves.items():
            writer.writerows([label, *point] for point in curve)
    with open(os.path.join(out_dir, "learning_curves.json"), "w") as f:
        json.dump(curves, f, indent=1)

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


if __name__ == "__main__":
    main()
