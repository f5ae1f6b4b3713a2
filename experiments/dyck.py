"""The paper's System 2 ablation on its own kind of data: Dyck-language completion (BIG-bench dyck_languages).

The paper reports, on BIG-bench Dyck, that an S2-trained EBT's perplexity falls by 7.19% from thinking longer and
by 18.7% from thinking longer and self-verifying (best-of-N by energy), and that the gain vanishes when training
used no random step sizes. Here the rows come from our generator (data/nlp/dyck.py: 3 bracket kinds; words of
4-16 brackets, depth <= 4, in distribution; 18-28 brackets, depth 5-8, out of distribution), and each seed trains,
with job_scripts/nlp/dyck/: the S2 EBT, the same without random step sizes (--randomize_mcmc_step_size_scale 1),
and a Transformer++ (same data, size and schedule); the loss is on the closing brackets only. Then, on held-out
in-distribution rows and on the longer/deeper rows, token-weighted perplexity of the closing brackets:
- after each of 1..8 thinking steps (one sample), and best of N = 1, 2, 4, 8 samples after 8 steps (lowest final
  energy per position), with the trained Langevin noise and the same evaluation seed throughout;
- the Transformer++'s (one forward pass). Writes <out>/dyck.{csv,json,png}.

    python experiments/dyck.py            # 2 seeds: ~20 min on 2 cores
    python experiments/dyck.py --smoke    # seconds
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the models are imported where they are used, after the arguments are checked
from experiments import thinking  # noqa: E402
from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point  # noqa: E402

RECIPES = "job_scripts/nlp/dyck"
MODELS = {  # label -> run name, job script, extra flags
    "EBT (S2)": ("ebt_s2", f"{RECIPES}/ebt_s2_tiny_cpu.sh", []),
    "EBT (S2, no random step size)": ("ebt_s2_fixed_step_size", f"{RECIPES}/ebt_s2_tiny_cpu.sh",
                                      ["--randomize_mcmc_step_size_scale", "1"]),
    "Transformer++": ("baseline_transformer", f"{RECIPES}/baseline_transformer_tiny_cpu.sh", []),
}
DATASETS = {"in_distribution": "Dyck, held out (in distribution)",
            "ood": "Dyck, longer and deeper (out of distribution)"}
SMOKE_FLAGS = ["--max_steps", "3", "--warm_up_steps", "1", "--val_check_interval", "3", "--limit_val_batches", "1",
               "--override_embedding_dim", "32", "--batch_size_per_device", "4"]
SMOKE_ROWS = {"train_rows": 64, "validation_rows": 8, "ood_rows": 8}
FULL_ROWS = {"train_rows": 20000, "validation_rows": 500, "ood_rows": 500}


def train_command(label, seed, log_dir, data_dir, smoke):
    """The recipe's command for one model and seed (on the generated rows), and its run name."""
    name, script, flags = MODELS[label]
    run_name = f"{name}_seed{seed}"
    return run_name, ["env", f"DYCK_DIR={data_dir}", "bash", script, *flags, "--run_name", run_name,
                      "--log_dir", log_dir, "--seed", str(seed), *(SMOKE_FLAGS if smoke else [])]


def evaluation_batches(hp, dataset_dir, batch_size):
    """The validation rows of a generated Dyck folder, formatted and collated as in training (answer-masked)."""
    from data.nlp import TextDataConfig, build_collator, load_tokenizer
    from data.nlp.downstream import DownstreamDataset

    data = TextDataConfig.from_hparams(hp, dataset_dir=dataset_dir)
    collate = build_collator(data, load_tokenizer(data.tokenizer))
    rows = DownstreamDataset(data, "validation")
    items = [rows[i] for i in range(len(rows))]
    return [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/dyck")
    add_training_arguments(parser, reuse_runs=True)
    parser.add_argument("--smoke", action="store_true", help="3 training steps of tiny models, one seed (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    from data.nlp.dyck import DyckShape, generate
    from model.registry import load_trained_model

    if args.smoke:
        args.seeds = args.seeds[:1]
    data_dir = os.path.abspath(os.path.join(args.out_dir, "data"))
    shape, ood_shape = DyckShape(), DyckShape(min_length=18, max_length=28, min_depth=5, max_depth=8)
    description = generate(data_dir, shape, ood_shape, seed=0, **(SMOKE_ROWS if args.smoke else FULL_ROWS))
    log_dir = os.path.join(args.out_dir, "runs")
    runs = {(label, seed): train_command(label, seed, log_dir, data_dir, args.smoke)
            for seed in args.seeds for label in MODELS}
    run_commands(dict(runs.values()), os.path.join(args.out_dir, "logs"), args.jobs,
                 reuse_finished_in=args.reuse_runs and log_dir)
    commands = {label: " ".join(runs[label, args.seeds[0]][1][2:]) for label in MODELS}  # without env DYCK_DIR=
    folders = {"in_distribution": data_dir, "ood": os.path.join(data_dir, "ood")}
    results = []
    for (label, seed), (run_name, _) in runs.items():
        model, hp = load_trained_model(os.path.join(newest_run(log_dir, run_name), "checkpoints", "last.ckpt"))
        for dataset, folder in folders.items():
            batches = evaluation_batches(hp, folder, hp["batch_size_per_device"])
            results.append({"model": label, "seed": seed, "dataset": dataset,
                            **thinking.evaluate(label, model, batches, eval_seed=seed)})
    summary = thinking.summarize(results, DATASETS, MODELS)
    thinking.write(results, summary, commands, args.out_dir, "dyck", DATASETS, MODELS, about={"data": description})
    return {"results": results, "summary": summary, "commands": commands}


if __name__ == "__main__":
    run_entry_point(main)
