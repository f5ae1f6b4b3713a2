"""Claim: one EBT training step with 2 thinking steps costs about 6.66x a Transformer++ step (paper's estimate).

Measures, interleaved in one process (median of --repeats), the wall time of a full training step (forward,
loss, backward, AdamW) of the time_embed EBT with 2 thinking steps and of the Transformer++ of the same size,
and sets it beside the ratio of their FLOP estimates (`estimate_flops`). Writes <out>/cost_ratio.{csv,json,png}.

    python experiments/cost_ratio.py                 # 4xs and xxs, 2 CPU threads here: ~2 minutes
    python experiments/cost_ratio.py --smoke         # seconds: a tiny model, 1 repeat
"""
import argparse
import csv
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the models are imported where they are used, after the arguments are checked
from utils.usage import Parser, check, output_path_problem, run_entry_point, whole_number  # noqa: E402

PAPER_RATIO = 6.66


def measure(size, vocab, context, batch_size, repeats, dims=None):
    """(EBT / Transformer++ step-time ratio, FLOP-estimate ratio, ms per EBT step, ms per T++ step)."""
    import torch

    from benchmarks.bench_training_step import batch_for, train_step
    from model.config import MODEL_SIZES
    from model.nlp.baseline_transformer import Baseline_Transformer_NLP
    from model.nlp.ebt import EBT_NLP

    layers, heads, dim = dims or MODEL_SIZES[size]
    hp = dict(vocab_size=vocab, context_length=context, embedding_dim=dim, num_transformer_blocks=layers,
              multiheaded_attention_heads=heads, pad_token_id=vocab - 1, ebt_type="time_embed", mcmc_num_steps=2,
              mcmc_step_size=500.0)
    torch.manual_seed(0)
    models = {"ebt": EBT_NLP(hp), "transformer++": Baseline_Transformer_NLP(hp)}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    batch = batch_for(vocab, context, batch_size, "cpu")
    times = {name: [] for name in models}
    for name in models:  # warm-up
        train_step(models[name], optimizers[name], batch)
    for _ in range(repeats):
        for name in models:
            start = time.perf_counter()
            train_step(models[name], optimizers[name], batch)
            times[name].append(time.perf_counter() - start)
    ebt, tpp = statistics.median(times["ebt"]), statistics.median(times["transformer++"])
    flops = models["ebt"].estimate_flops() / models["transformer++"].estimate_flops()
    return ebt / tpp, flops, ebt * 1e3, tpp * 1e3


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/cost_ratio")
    parser.add_argument("--repeats", type=whole_number(1), default=5)
    parser.add_argument("--smoke", action="store_true", help="a tiny model and one repeat (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    settings = ([("tiny", 64, 16, 2, (1, 2, 32))] if args.smoke else
                [("4xs", 258, 256, 4, None), ("xxs", 258, 256, 4, None), ("xxs", 50277, 256, 2, None)])
    repeats = 1 if args.smoke else args.repeats
    rows = []
    for size, vocab, context, batch_size, dims in settings:
        time_ratio, flops_ratio, ebt_ms, tpp_ms = measure(size, vocab, context, batch_size, repeats, dims)
        rows.append(dict(size=size, vocab=vocab, context=context, batch=batch_size, ebt_ms=round(ebt_ms, 1),
                         transformer_ms=round(tpp_ms, 1), time_ratio=round(time_ratio, 2),
                         flops_ratio=round(flops_ratio, 2), paper_estimate=PAPER_RATIO))
        print(f"{size} vocab {vocab} C {context} B {batch_size}: EBT {ebt_ms:.0f} ms, T++ {tpp_ms:.0f} ms per step "
              f"-> {time_ratio:.2f}x measured, {flops_ratio:.2f}x by FLOP estimate (paper {PAPER_RATIO}x)", flush=True)
    write(rows, args.out_dir)
    return rows


def write(rows, out_dir):
    import torch

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "cost_ratio.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(out_dir, "cost_ratio.json"), "w") as f:
        json.dump({"threads": torch.get_num_threads(), "rows": rows}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['size']}\nV={r['vocab']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([i - 0.2 for i in x], [r["time_ratio"] for r in rows], width=0.4, label="measured step time")
    ax.bar([i + 0.2 for i in x], [r["flops_ratio"] for r in rows], width=0.4, label="FLOP estimate")
    ax.axhline(PAPER_RATIO, color="gray", linestyle="--", label=f"paper's estimate {PAPER_RATIO}x")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("EBT (2 thinking steps) / Transformer++")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "cost_ratio.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run_entry_point(main)
