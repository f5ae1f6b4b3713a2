"""Claim 2, "EBTs can think": System 2 thinking at test time (more steps, best-of-N self-verification) lowers an
S2-trained EBT's perplexity, more so out of distribution; a Transformer++ cannot improve by thinking; without
random step sizes during training the gain vanishes (paper's ablation).

Trains, for each seed, with the recipe of job_scripts/nlp/pretrain/ebt_s2_tiny_cpu.sh (4xs, bytes, Shakespeare):
the S2 EBT, the same EBT without random step sizes (--randomize_mcmc_step_size_scale 1) and a Transformer++
with the same data, context, batch and steps. Then evaluates on Shakespeare validation rows (in distribution)
and BBC news (out of distribution), token-weighted:
- perplexity after each of 1..8 thinking steps (one sample);
- best of N = 1, 2, 4, 8 samples after 8 steps, chosen per position by the lowest final energy;
- the Transformer++'s perplexity (one forward pass; it has nothing to think with).
Every EBT configuration uses the trained Langevin noise and random initial guesses; the same evaluation seed
for every configuration. Writes <out>/thinking.{csv,json,png}.

    python experiments/thinking.py            # 2 seeds: ~25 min on 2 cores
    python experiments/thinking.py --smoke    # seconds
"""
import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the models are imported where they are used, after the arguments are checked
from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point, whole_number  # noqa: E402

S2_RECIPE = "job_scripts/nlp/pretrain/ebt_s2_tiny_cpu.sh"
# the Transformer++ of the quickstart recipe (same data, size and learning rate) on the S2 recipe's schedule
TRANSFORMER = ["env", "MODEL_NAME=baseline_transformer", "bash", "job_scripts/quickstart.sh"]
TRANSFORMER_FLAGS = ["--max_steps", "600", "--warm_up_steps", "60", "--val_check_interval", "200"]
MODELS = {  # label -> run name, command, extra flags
    "EBT (S2)": ("ebt_s2", ["bash", S2_RECIPE], []),
    "EBT (S2, no random step size)": ("ebt_s2_fixed_step_size", ["bash", S2_RECIPE],
                                      ["--randomize_mcmc_step_size_scale", "1"]),
    "Transformer++": ("baseline_transformer", TRANSFORMER, TRANSFORMER_FLAGS),
}
SMOKE_FLAGS = ["--max_steps", "3", "--warm_up_steps", "1", "--val_check_interval", "3", "--limit_val_batches", "1",
               "--override_embedding_dim", "32", "--context_length", "16", "--batch_size_per_device", "4"]
STEPS = [1, 2, 3, 4, 5, 6, 7, 8]
SAMPLES = [1, 2, 4, 8]
PAPER = {"improvement_percent": 29, "dyck_longer_percent": 7.19, "dyck_longer_verified_percent": 18.7}
DATASETS = {"shakespeare": "Shakespeare (in distribution)", "bbc_news": "BBC news (out of distribution)"}


def train_command(label, seed, log_dir, smoke):
    """The recipe's command for one model and seed, and its run name."""
    name, command, flags = MODELS[label]
    run_name = f"{name}_seed{seed}"
    return run_name, [*command, *flags, "--run_name", run_name, "--log_dir", log_dir, "--seed", str(seed),
                      "--no_wandb", *(SMOKE_FLAGS if smoke else []),
                      *(["--mcmc_replay_buffer_size", "8"] if smoke and name.startswith("ebt") else [])]


def evaluation_batches(hp, dataset_name, rows, batch_size):
    """The first `rows` validation rows of a corpus, tokenized and split as in training (same seed)."""
    from data.nlp import TextDataConfig, build_collator, build_splits, load_tokenizer

    data = TextDataConfig.from_hparams(hp, dataset_name=dataset_name)
    tokenizer = load_tokenizer(data.tokenizer)
    _, valid, _ = build_splits(data, tokenizer)
    collate = build_collator(data, tokenizer)
    items = [valid[i] for i in range(min(rows, len(valid)))]
    return [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def token_weighted(model, batches, inference=None, eval_seed=0):
    """Token-weighted loss after each step (EBT) or of the one pass (Transformer++), as a list."""
    import torch

    torch.manual_seed(eval_seed)
    total, count = None, 0
    for batch in batches:
        kwargs = {"inference": inference} if inference is not None else {}
        with torch.no_grad():
            out = model.forward_loss_wrapper(batch, phase="test", **kwargs)
        n = int(out["count"])
        weighted = out["step_losses"].double() * n
        total, count = (weighted if total is None else total + weighted), count + n
    return (total / count).tolist()


def evaluate(label, model, batches, eval_seed):
    from model.config import InferenceConfig

    if not label.startswith("EBT"):
        return {"transformer": token_weighted(model, batches)[0]}
    steps = token_weighted(model, batches, InferenceConfig(infer_ebt_num_steps=max(STEPS)), eval_seed)
    best_of = {n: token_weighted(model, batches, InferenceConfig(infer_ebt_num_steps=max(STEPS),
                                                                 infer_generated_samples=n), eval_seed)[-1]
               for n in SAMPLES}
    return {"steps": {str(s): loss for s, loss in zip(STEPS, steps)},
            "best_of": {str(n): loss for n, loss in best_of.items()}}


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/thinking")
    parser.add_argument("--eval_rows", type=whole_number(1), default=256, help="rows of 64 tokens per evaluation set")
    add_training_arguments(parser, reuse_runs=True)
    parser.add_argument("--smoke", action="store_true", help="3 training steps of tiny models, one seed (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    from model.registry import load_trained_model

    if args.smoke:
        args.seeds = args.seeds[:1]
    rows = 8 if args.smoke else args.eval_rows
    log_dir = os.path.join(args.out_dir, "runs")
    runs = {(label, seed): train_command(label, seed, log_dir, args.smoke) for seed in args.seeds for label in MODELS}
    run_commands(dict(runs.values()), os.path.join(args.out_dir, "logs"), args.jobs,
                 reuse_finished_in=args.reuse_runs and log_dir)
    commands = {label: " ".join(runs[label, args.seeds[0]][1]).replace(sys.executable, "python") for label in MODELS}
    results = []
    for (label, seed), (run_name, _) in runs.items():
        model, hp = load_trained_model(os.path.join(newest_run(log_dir, run_name), "checkpoints", "last.ckpt"))
        for dataset in DATASETS:
            batches = evaluation_batches(hp, dataset, rows, hp["batch_size_per_device"])
            results.append({"model": label, "seed": seed, "dataset": dataset,
                            **evaluate(label, model, batches, eval_seed=seed)})
    summary = summarize(results)
    write(results, summary, commands, args.out_dir)
    return {"results": results, "summary": summary, "commands": commands}


def mean(values):
    return sum(values) / len(values)


def improvements(steps, best_of):
    """Perplexity lowered by (in %) thinking longer (8 steps) and longer + best of 8, relative to System 1."""
    system1 = steps["3"]
    return {"longer_percent": 100 * (1 - math.exp(steps[str(max(STEPS))] - system1)),
            "longer_verified_percent": 100 * (1 - math.exp(best_of[str(max(SAMPLES))] - system1))}


def summarize(results, datasets=DATASETS, models=MODELS):
    """Seed-mean losses and perplexities per (model, dataset); the EBTs' improvements over System 1, which is
    taken as 3 steps and one sample (the recipe's evaluation: its randomised 2-3 training steps, at most)."""
    summary = {}
    for dataset in datasets:
        for label in models:
            runs = [r for r in results if r["model"] == label and r["dataset"] == dataset]
            if not runs:
                continue
            key = f"{label} | {dataset}"
            if "transformer" in runs[0]:
                summary[key] = {"loss": mean([r["transformer"] for r in runs])}
                continue
            steps = {str(s): mean([r["steps"][str(s)] for r in runs]) for s in STEPS}
            best_of = {str(n): mean([r["best_of"][str(n)] for r in runs]) for n in SAMPLES}
            summary[key] = {"steps": steps, "best_of": best_of, "system1_loss": steps["3"],
                            **improvements(steps, best_of),
                            "longer_verified_percent_per_seed": [improvements(r["steps"], r["best_of"])[
                                "longer_verified_percent"] for r in runs]}
    return summary


def write(results, summary, commands, out_dir, name="thinking", datasets=DATASETS, models=MODELS, about=None):
    """<out_dir>/<name>.{json,csv,png}: every result, the summary, the commands; perplexity against thinking steps
    and against samples, one row of panels per dataset. `about`: more to keep in the JSON (e.g. the data's shape)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump({"results": results, "summary": summary, "commands": commands, "paper": PAPER, **(about or {})}, f,
                  indent=1)
    with open(os.path.join(out_dir, f"{name}.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "seed", "dataset", "thinking_steps", "samples", "loss", "perplexity"])
        for r in results:
            if "transformer" in r:
                loss = r["transformer"]
                writer.writerow([r["model"], r["seed"], r["dataset"], 1, 1, loss, math.exp(loss)])
                continue
            for s, loss in r["steps"].items():
                writer.writerow([r["model"], r["seed"], r["dataset"], int(s), 1, loss, math.exp(loss)])
            for n, loss in r["best_of"].items():
                writer.writerow([r["model"], r["seed"], r["dataset"], max(STEPS), int(n), loss, math.exp(loss)])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.5 * len(datasets)), squeeze=False)  # own y ranges
    for row, (dataset, title) in enumerate(datasets.items()):
        for label, color in zip(models, ("C0", "C2", "C1")):
            stats = summary.get(f"{label} | {dataset}")
            if stats is None:
                continue
            if "loss" in stats:  # the Transformer++: a flat line
                for ax in axes[row]:
                    ax.axhline(math.exp(stats["loss"]), color=color, linestyle="--", label=label)
                continue
            axes[row][0].plot(STEPS, [math.exp(stats["steps"][str(s)]) for s in STEPS], marker="o", color=color,
                              label=label)
            axes[row][1].plot(SAMPLES, [math.exp(stats["best_of"][str(n)]) for n in SAMPLES], marker="o", color=color,
                              label=label)
        axes[row][0].set_ylabel(f"{title}\nperplexity (bytes)")
        axes[row][0].set_yscale("log")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("thinking steps (one sample)")
    axes[-1][1].set_xlabel(f"best of N samples ({max(STEPS)} steps, lowest energy kept)")
    axes[0][1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run_entry_point(main)
