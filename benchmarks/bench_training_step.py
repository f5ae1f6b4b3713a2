"""Training-step throughput and peak memory: Transformer++ vs EBT (fast and reference attention).

One step = forward + loss + backward + AdamW step, fp32. Paths of one configuration are run
interleaved in one process (medians of --repeats); peak memory is measured per path in a fresh
subprocess (peak resident set above the model's own footprint on CPU, max_memory_allocated on GPU).

    python benchmarks/bench_training_step.py                 # all configurations below
    python benchmarks/bench_training_step.py --configs 4xs-v512-c64-b4
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from model.config import MODEL_SIZES  # noqa: E402
from model.nlp.baseline_transformer import Baseline_Transformer_NLP  # noqa: E402
from model.nlp.ebt import EBT_NLP  # noqa: E402

# name: (size, vocab, context, batch). The first two are the configurations the published code was
# measured at on these machines; the last two are the speed-target settings (byte vocabulary).
CONFIGS = {
    "4xs-v512-c64-b4": ("4xs", 512, 64, 4),
    "xxs-v50277-c256-b2": ("xxs", 50277, 256, 2),
    "4xs-v258-c256-b4": ("4xs", 258, 256, 4),
    "xxs-v258-c256-b4": ("xxs", 258, 256, 4),
}
PATHS = ("transformer++", "ebt-fast", "ebt-reference")


def build(path, size, vocab, context, ebt_type, steps):
    layers, heads, dim = MODEL_SIZES[size]
    hp = dict(vocab_size=vocab, context_length=context, embedding_dim=dim, num_transformer_blocks=layers,
              multiheaded_attention_heads=heads, pad_token_id=vocab - 1, ebt_type=ebt_type,
              mcmc_num_steps=steps, mcmc_step_size=500.0)
    if path == "transformer++":
        model = Baseline_Transformer_NLP(hp)
    else:
        model = EBT_NLP(dict(hp, ebt_attention=path.split("-")[1]))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def train_step(model, optimizer, batch):
    out = model.forward_loss_wrapper(batch, "train")
    out["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out["loss"].item()


def batch_for(vocab, context, batch_size, device):
    generator = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, vocab - 1, (batch_size, context + 1), generator=generator).to(device)}


def peak_memory_of(path, config, ebt_type, steps, device):
    """Run two steps of one path in a fresh process and return its peak memory in MB."""
    code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {repr(os.path.dirname(os.path.abspath(__file__)))});"
            f"import bench_training_step as b; print(b.measure_memory({path!r}, {config!r}, {ebt_type!r}, {steps}, "
            f"{device!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024


def measure_memory(path, config, ebt_type, steps, device):
    """Peak memory (MB) of two training steps above what model, optimizer and batch already hold."""
    size, vocab, context, batch_size = CONFIGS[config]
    torch.manual_seed(0)
    model, optimizer = build(path, size, vocab, context, ebt_type, steps)
    model.to(device)
    batch = batch_for(vocab, context, batch_size, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (VmHWM) to the current one
        base = _status_mb("VmRSS")
    for _ in range(2):
        train_step(model, optimizer, batch)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _status_mb("VmHWM")
    return peak - base


def run_config(config, ebt_type, steps, repeats, device):
    size, vocab, context, batch_size = CONFIGS[config]
    batch = batch_for(vocab, context, batch_size, device)
    models, losses = {}, {}
    for path in PATHS:
        torch.manual_seed(0)
        models[path] = build(path, size, vocab, context, ebt_type, steps)
        models[path][0].to(device)
    # equal losses: fast and reference see identical weights and initial guesses
    for path in ("ebt-fast", "ebt-reference"):
        torch.manual_seed(1)
        losses[path] = models[path][0].forward_loss_wrapper(batch, "valid")["step_losses"]
    times = {path: [] for path in PATHS}
    for path in PATHS:  # warm-up
        train_step(*models[path], batch)
    for _ in range(repeats):
        for path in PATHS:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(*models[path], batch)
            if device == "cuda":
                torch.cuda.synchronize()
            times[path].append(time.perf_counter() - start)
    tokens = batch_size * context
    med = {path: statistics.median(t) for path, t in times.items()}
    print(f"\n== {config}: {size}, vocab {vocab}, context {context}, batch {batch_size}, ebt_type {ebt_type}, "
          f"{steps} thinking steps, {device}, {torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'path':>15} {'ms/step':>10} {'tokens/s':>10} {'peak MB':>9}")
    for path in PATHS:
        memory = peak_memory_of(path, config, ebt_type, steps, device)
        print(f"{path:>15} {med[path] * 1e3:>10.1f} {tokens / med[path]:>10.0f} {memory:>9.0f}")
    print(f"EBT-fast / Transformer++ step-time ratio: {med['ebt-fast'] / med['transformer++']:.2f}x")
    print(f"fast-path speed-up over the reference:    {med['ebt-reference'] / med['ebt-fast']:.2f}x")
    relative = ((losses["ebt-fast"] - losses["ebt-reference"]).abs() / losses["ebt-reference"].abs()).max()
    print(f"max relative loss difference fast vs reference: {relative.item():.1e}")
    return med


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--ebt_types", nargs="*", default=["default", "time_embed"])
    parser.add_argument("--steps", type=int, default=2, help="thinking steps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    for config in args.configs:
        for ebt_type in args.ebt_types:
            run_config(config, ebt_type, args.steps, args.repeats, args.device)


if __name__ == "__main__":
    main()
