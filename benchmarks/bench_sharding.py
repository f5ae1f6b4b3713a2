"""Per-rank memory of FSDP2 training (--distributed_strategy fsdp) against one unsharded process.

One training step of a text EBT (time_embed, 2 thinking steps, learnable alpha; AdamW) on 1 process
unsharded (what DDP keeps on every rank) and on 1, 2, ... gloo processes sharded (utils/sharding.py). Per rank:

    parameters    bytes of the weights the rank keeps between steps (its shards + the whole 0-dim ones)
    gradients     bytes of its gradients after the step's backward
    optimizer     bytes of its AdamW state (two moments per weight it keeps)
    gathered      bytes of weights the rank holds during the step: its units' gathered weights, kept from
                  the first forward to the end of the backward (the price of the second-order step)
    step peak     the second step's peak resident set above the level before it (CPU: VmHWM reset through
                  /proc/self/clear_refs; the first step warms up allocator and thread pools)

    python benchmarks/bench_sharding.py                        # 1 unsharded, 1 and 2 sharded processes
    python benchmarks/bench_sharding.py --processes 1 2 4 --width 512 --blocks 8
"""
import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from model.nlp.ebt import EBT_NLP  # noqa: E402
from utils import sharding  # noqa: E402
from utils.optimization import build_param_groups  # noqa: E402
from utils.usage import Parser, check, run_entry_point, whole_number  # noqa: E402


def local_bytes(tensors):
    return sum((t.to_local() if isinstance(t, sharding.DTensor) else t).numel() * t.element_size()
               for t in tensors if t is not None)


def status_bytes(field):
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024  # kB


def train_step(model, optimizer, batch, whole, shard):
    """One step; the bytes of weights held inside it."""
    optimizer.zero_grad(set_to_none=True)
    out = model.forward_loss_wrapper(batch, "train")
    held = sum(p.untyped_storage().nbytes() for p in model.parameters())  # inside a step: gathered weights
    out["loss"].backward()
    if shard:
        sharding.average_replicated_gradients(whole)
        sharding.reshard(model)
    optimizer.step()
    return held


def measure(args, rank=0, world=1, shard=True):
    """{figure: bytes} of rank `rank` after one training step."""
    torch.manual_seed(0)
    model = EBT_NLP(dict(vocab_size=args.vocab, context_length=args.context, embedding_dim=args.width,
                         num_transformer_blocks=args.blocks, multiheaded_attention_heads=args.width // 64,
                         mcmc_num_steps=2, mcmc_step_size=500.0, mcmc_step_size_learnable=True,
                         ebt_type="time_embed", normalize_initial_condition=True, fused_vocab_loss="off"))
    whole = []
    if shard:
        from torch.distributed.device_mesh import init_device_mesh

        whole = sharding.shard_model(model, init_device_mesh("cpu", (world,)))
    optimizer = torch.optim.AdamW(build_param_groups(model, 1e-3, 0.01, 1500, sharded=shard), foreach=True)
    params = list(model.parameters())  # between steps: the rank's shards
    batch = {"input_ids": torch.randint(0, args.vocab, (args.batch, args.context + 1))}
    train_step(model, optimizer, batch, whole, shard)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set (VmHWM) to the current one
    before = status_bytes("VmRSS")
    held = train_step(model, optimizer, batch, whole, shard)
    peak = status_bytes("VmHWM") - before
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0]
    return {"parameters": local_bytes(params), "gradients": local_bytes(p.grad for p in params),
            "optimizer": local_bytes(state), "gathered": held, "step peak": peak}


def _rank(rank, world, port, args, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        figures = measure(args, rank, world)
        gathered = [None] * world
        dist.all_gather_object(gathered, figures)
        if rank == 0:
            torch.save(gathered, path)
    finally:
        # every rank's collectives (FSDP's reduce-scatters run on gloo's threads) end before the group does: a rank
        # that tore it down early aborted its peer ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()


def _unsharded(rank, args, path):
    torch.save(measure(args, shard=False), path)


def unsharded_figures(args):
    """Measured in a fresh process too, so that every row starts from the same state."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "unsharded.pt")
        mp.spawn(_unsharded, args=(args, path), nprocs=1)
        return torch.load(path)


def sharded_figures(args, world, path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(world, port, args, path), nprocs=world)
    return torch.load(path)


def parse(argv):
    p = Parser(prog="bench_sharding.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=whole_number(1), nargs="+", default=[1, 2], help="sharded runs: ranks each")
    p.add_argument("--width", type=whole_number(1), default=256)
    p.add_argument("--blocks", type=whole_number(1), default=4)
    p.add_argument("--vocab", type=whole_number(1), default=1024)
    p.add_argument("--context", type=whole_number(1), default=64)
    p.add_argument("--batch", type=whole_number(1), default=4, help="rows per rank")
    args = p.parse_args(argv)
    check(None if args.width % 64 == 0 else f"--width {args.width}: must be a multiple of 64 (heads of 64)")
    return args


def main(argv=None):
    import tempfile

    args = parse(argv)
    torch.set_num_threads(1)
    rows = [("1 process, unsharded", unsharded_figures(args))]
    with tempfile.TemporaryDirectory() as folder:
        for world in args.processes:
            figures = sharded_figures(args, world, os.path.join(folder, f"{world}.pt"))
            rows.append((f"{world} process{'es' if world > 1 else ''}, FSDP2 (rank 0)", figures[0]))
    keys = list(rows[0][1])
    print(f"text EBT width {args.width}, {args.blocks} blocks, vocab {args.vocab}, {args.batch}x{args.context} tokens "
          f"per rank, fp32; MiB per rank")
    print(f"{'':32}" + "".join(f"{k:>12}" for k in keys))
    for name, figures in rows:
        print(f"{name:32}" + "".join(f"{figures[k] / 2**20:12.2f}" for k in keys))
    base = rows[0][1]
    for name, figures in rows[1:]:
        kept = (figures["parameters"] + figures["gradients"] + figures["optimizer"]) / \
            (base["parameters"] + base["gradients"] + base["optimizer"])
        print(f"{name}: keeps {kept:.3f} of the unsharded weights + gradients + optimizer state")
    return 0


if __name__ == "__main__":
    run_entry_point(main)
