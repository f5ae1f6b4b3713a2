"""Training-step time, working memory and MFU: the fused vocabulary step against the current path.

One step = forward + loss + backward + AdamW step, fp32 (or --precision bf16-mixed), at the published example
hyperparameters (example_code/minimal_nlp_training_loop.py and every published NLP script: time_embed, 2
thinking steps, normalize_initial_condition, random_noise initial logits, alpha 500 learnable in its own
group at 1500x the lr, AdamW lr 1e-3).
Paths, run interleaved in one process (medians of --repeats):

    ebt-current   plain autograd over (B, n, V) tensors (--fused_vocab_loss off), torch's default AdamW
    ebt-fused     model/nlp/vocab_step.py (--fused_vocab_loss auto) and fused AdamW (what training uses)
    ebt-fused-ckpt  ebt-fused with --activation_checkpointing: each step's energy gradient recomputed in the
                  backward pass (model/thinking.py, energy_and_gradient)
    t++-current   the Transformer++: logits, then cross-entropy; default AdamW
    t++-fused     the Transformer++ with the chunked linear cross-entropy and fused AdamW

Working memory: peak above what model, optimizer state and batch hold, measured per path in a fresh
process around its second step (peak resident set on CPU, max_memory_allocated on GPUs). MFU: the
model's training FLOPs (`estimate_flops`) per second over this machine's fp32 matmul peak, measured here.
GFLOP, GFLOP/s: the matrix-product FLOPs one step really dispatches (torch's FlopCounterMode: forward, inner
gradients and second-order backward) and their rate, which compares how efficiently paths and models run
whatever work their method needs.

    python benchmarks/bench_training_step.py                          # the three configurations
    python benchmarks/bench_training_step.py --configs 4xs-v512-c64-b4 --repeats 9
    python benchmarks/bench_training_step.py --configs none --max_batch   # largest xxs/NeoX batch in 8 GB
    python benchmarks/bench_training_step.py --device cuda --precision bf16-mixed   # on a GPU machine
"""
import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from model.config import MODEL_SIZES  # noqa: E402
from model.nlp.baseline_transformer import Baseline_Transformer_NLP  # noqa: E402
from model.nlp.ebt import EBT_NLP  # noqa: E402
from utils.optimization import adamw_implementation, build_param_groups  # noqa: E402
from utils.usage import Parser, UsageError, check, device_problem, run_entry_point, whole_number  # noqa: E402

NEOX_VOCAB = 50277
# name: (size, vocabulary, context, batch)
CONFIGS = {
    "4xs-v50277-c64-b4": ("4xs", NEOX_VOCAB, 64, 4),
    "xxs-v50277-c256-b2": ("xxs", NEOX_VOCAB, 256, 2),
    "4xs-v512-c64-b4": ("4xs", 512, 64, 4),
}


@dataclass(frozen=True)
class Path:
    """A benchmarked training step: the model, its options over the published hyperparameters, whether
    it uses fused AdamW, and the path (its oracle twin) it is compared with."""
    model: type
    options: dict
    fused_adamw: bool
    twin: str = None


PATHS = {
    "ebt-current": Path(EBT_NLP, {"fused_vocab_loss": "off"}, False),
    "ebt-fused": Path(EBT_NLP, {"fused_vocab_loss": "auto"}, True, "ebt-current"),
    "ebt-fused-ckpt": Path(EBT_NLP, {"fused_vocab_loss": "auto", "activation_checkpointing": True}, True,
                           "ebt-current"),
    "t++-current": Path(Baseline_Transformer_NLP, {"fused_vocab_loss": "off"}, False),
    "t++-fused": Path(Baseline_Transformer_NLP, {"fused_vocab_loss": "auto"}, True, "t++-current"),
}
PRECISION = os.environ.get("BENCH_PRECISION", "32-true")  # inherited by the memory subprocesses


def build(path, size, vocab, context, device):
    layers, heads, dim = MODEL_SIZES[size]
    spec = PATHS[path]
    hp = dict(vocab_size=vocab, context_length=context, embedding_dim=dim, num_transformer_blocks=layers,
              multiheaded_attention_heads=heads, pad_token_id=vocab - 1, ebt_type="time_embed", mcmc_num_steps=2,
              normalize_initial_condition=True, denoising_initial_condition="random_noise", mcmc_step_size=500.0,
              mcmc_step_size_learnable=True, **spec.options)
    model = spec.model(hp).to(device)
    groups = build_param_groups(model, 1e-3, 0.01, 1500.0)
    implementation = adamw_implementation(model.parameters(), PRECISION) if spec.fused_adamw else {}
    return model, torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, **implementation)


def train_step(model, optimizer, batch):
    device = batch["input_ids"].device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=PRECISION == "bf16-mixed"):
        out = model.forward_loss_wrapper(batch, "train")
    out["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out["step_losses"]


def batch_for(vocab, context, batch_size, device):
    generator = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, vocab - 1, (batch_size, context + 1), generator=generator).to(device)}


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024


def _release_freed_memory():
    gc.collect()
    try:  # hand freed heap back to the OS so the resident set is what is live
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def measure_memory(path, size, vocab, context, batch_size, device):
    """{working_mb, peak_mb} of one training step after a first one (which allocates the optimizer state)."""
    torch.manual_seed(0)
    model, optimizer = build(path, size, vocab, context, device)
    batch = batch_for(vocab, context, batch_size, device)
    train_step(model, optimizer, batch)
    _release_freed_memory()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (VmHWM) to the current one
        base = _status_mb("VmRSS")
    train_step(model, optimizer, batch)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _status_mb("VmHWM")
    return {"working_mb": peak - base, "peak_mb": peak}


def memory_in_fresh_process(path, size, vocab, context, batch_size, device):
    code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench_training_step as b; print(json.dumps(b.measure_memory({path!r}, {size!r}, {vocab}, "
            f"{context}, {batch_size}, {device!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        return None  # out of memory (killed), or failed: the caller reports it
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak_flops(device, n=2048, repeats=15):
    """The machine's matmul peak (FLOP/s) in the run's precision: the fastest of `repeats` n x n products."""
    dtype = torch.bfloat16 if PRECISION == "bf16-mixed" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def counted_matmul_flops(model, optimizer, batch):
    """Matrix-product FLOPs of one training step as torch dispatches them (forward, inner gradients,
    second-order backward): what the step really computes, against which its speed is comparable across
    paths and models."""
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, optimizer, batch)
    return counter.get_total_flops()


def run_config(config, paths, repeats, device, peak_flops):
    size, vocab, context, batch_size = CONFIGS[config]
    batch = batch_for(vocab, context, batch_size, device)
    models, first_losses, times = {}, {}, {path: [] for path in paths}
    for path in paths:
        torch.manual_seed(0)
        models[path] = build(path, size, vocab, context, device)
    for path in paths:  # warm-up; both EBT paths start from the same weights and initial guesses
        torch.manual_seed(1)
        first_losses[path] = train_step(*models[path], batch).detach()
    counted = {path: counted_matmul_flops(*models[path], batch) for path in paths}
    for _ in range(repeats):
        for path in paths:
            _sync(device)
            start = time.perf_counter()
            train_step(*models[path], batch)
            _sync(device)
            times[path].append(time.perf_counter() - start)
    tokens = batch_size * context
    med = {path: statistics.median(t) for path, t in times.items()}
    print(f"\n== {config}: {size}, vocabulary {vocab}, context {context}, batch {batch_size}, {device}, "
          f"{torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'path':>14} {'ms/step':>9} {'speed-up':>9} {'tokens/s':>9} {'working MB':>11} {'ratio':>6} {'MFU':>6} "
          f"{'GFLOP':>7} {'GFLOP/s':>8}")
    memory = {path: memory_in_fresh_process(path, size, vocab, context, batch_size, device) for path in paths}
    for path in paths:
        twin = PATHS[path].twin
        flops = models[path][0].estimate_flops() * tokens / med[path]
        work = memory[path]["working_mb"] if memory[path] else float("nan")
        speed = ratio = ""  # against the twin, when it ran
        if twin in med:
            speed = f"{med[twin] / med[path]:.2f}x"
            ratio = f"{work / memory[twin]['working_mb']:.2f}" if memory[twin] else "nan"
        print(f"{path:>14} {med[path] * 1e3:>9.1f} {speed:>9} {tokens / med[path]:>9.0f} {work:>11.0f} "
              f"{ratio:>6} {100 * flops / peak_flops:>5.1f}% {counted[path] / 1e9:>7.2f} "
              f"{counted[path] / med[path] / 1e9:>8.1f}")
    for path in paths:
        twin = PATHS[path].twin
        if twin in first_losses:
            a, b = first_losses[path], first_losses[twin]
            print(f"{path} vs {twin}: max relative difference of the first step's losses: "
                  f"{((a - b).abs() / b.abs()).max().item():.1e}")
    return med


def largest_batch(path, device, budget_mb):
    """The largest xxs/NeoX/context-256 batch whose step peaks within budget_mb: a linear estimate from
    batches 1 and 2, checked by running it (and one less while it does not fit)."""
    size, vocab, context = "xxs", NEOX_VOCAB, 256
    one, two = (memory_in_fresh_process(path, size, vocab, context, b, device) for b in (1, 2))
    per_row = two["peak_mb"] - one["peak_mb"]
    batch = max(1, int((budget_mb - one["peak_mb"]) // per_row) + 1)
    while batch > 1:
        measured = memory_in_fresh_process(path, size, vocab, context, batch, device)
        if measured and measured["peak_mb"] <= budget_mb:
            break
        batch -= 1
    else:
        measured = one
    print(f"{path:>14}: batch {batch} peaks at {measured['peak_mb']:.0f} MB "
          f"({per_row:.0f} MB per row of 256 tokens)")
    return batch


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS) + ["none"])
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--repeats", type=whole_number(1), default=5)
    parser.add_argument("--max_batch", action="store_true",
                        help="also find the largest xxs/NeoX/context-256 batch within --budget_mb, each EBT path")
    parser.add_argument("--budget_mb", type=float, default=8192)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"],
                        help="bf16-mixed: every path under bf16 autocast (GPUs), foreach AdamW")
    args = parser.parse_args(argv)
    check(device_problem("--device", args.device))
    if args.budget_mb <= 0:
        raise UsageError(f"--budget_mb {args.budget_mb:g}: must be positive")
    global PRECISION
    PRECISION = os.environ["BENCH_PRECISION"] = args.precision
    peak = matmul_peak_flops(args.device)
    print(f"{args.precision} matmul peak measured here: {peak / 1e9:.1f} GFLOP/s (fastest 2048 x 2048 product, "
          f"{args.device})")
    for config in args.configs:
        if config != "none":
            run_config(config, args.paths, args.repeats, args.device, peak)
    if args.max_batch:
        print(f"\n== largest xxs/NeoX/context-256 training batch within {args.budget_mb:.0f} MB ({args.device})")
        for path in ("ebt-current", "ebt-fused", "ebt-fused-ckpt"):
            largest_batch(path, args.device, args.budget_mb)


if __name__ == "__main__":
    run_entry_point(main)
