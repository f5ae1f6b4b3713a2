"""The device check of --float_precision bf16-mixed and of the FSDP2 path, for a GPU machine (also runs on CPU).

1. One text-EBT training step (time_embed, 2 thinking steps, learnable alpha 5, second order) in float32 and
   under bf16 autocast (what Lightning's bf16-mixed does): the losses agree within 2e-2 relative (bfloat16
   keeps 8 significant bits, a relative rounding of 4e-3 per operation, and the loss goes through two
   thinking steps of a few dozen such operations) and the gradients point the same way (cosine > 0.98; 0.993 measured on CPU).
2. The same float32 step through utils/sharding.py's FSDP2 with 1 process: loss and gradients equal the
   unsharded step's up to float32 rounding.

    python benchmarks/check_precision_and_fsdp.py                 # cuda when visible, else cpu
    python benchmarks/check_precision_and_fsdp.py --device cpu
Prints the figures; exit status 1 when a check fails.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.usage import Parser, check, device_problem, run_entry_point  # noqa: E402

LOSS_RTOL_BF16 = 2e-2
COSINE_BF16 = 0.98


def step(device, autocast=False, shard=False):
    """(loss, flat gradient) of one training step of a small text EBT, from fixed weights and batch."""
    import torch

    from model.nlp.ebt import EBT_NLP
    from utils import sharding

    torch.manual_seed(0)
    model = EBT_NLP(dict(vocab_size=512, context_length=64, embedding_dim=256, num_transformer_blocks=4,
                         multiheaded_attention_heads=4, mcmc_num_steps=2, mcmc_step_size=5.0,
                         mcmc_step_size_learnable=True, ebt_type="time_embed",
                         normalize_initial_condition=True)).to(device)
    whole = []
    if shard:
        from torch.distributed.device_mesh import init_device_mesh

        whole = sharding.shard_model(model, init_device_mesh(device.type, (1,)))
    params = list(model.parameters())
    torch.manual_seed(1)  # the batch and the initial guesses: the same draws in every variant
    batch = {"input_ids": torch.randint(0, 512, (4, 65), device=device)}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model.forward_loss_wrapper(batch, "train")
    out["loss"].backward()
    if shard:
        sharding.average_replicated_gradients(whole)
        sharding.reshard(model)
    grad = torch.cat([sharding.full_tensor(p.grad).float().flatten() for p in params if p.grad is not None])
    return out["loss"].item(), grad


def main(argv=None):
    p = Parser(prog="check_precision_and_fsdp.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when visible)")
    args = p.parse_args(argv)
    import torch
    import torch.distributed as dist

    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check(device_problem("--device", name))
    device = torch.device(name)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    failures = []

    loss32, grad32 = step(device)
    loss16, grad16 = step(device, autocast=True)
    relative = abs(loss16 - loss32) / abs(loss32)
    cosine = float(torch.nn.functional.cosine_similarity(grad32, grad16, dim=0))
    print(f"float32 loss {loss32:.6f}, bf16-mixed loss {loss16:.6f}: relative difference {relative:.2e} "
          f"(bound {LOSS_RTOL_BF16:.0e}); gradient cosine {cosine:.5f} (bound {COSINE_BF16})")
    if relative > LOSS_RTOL_BF16 or cosine < COSINE_BF16:
        failures.append("bf16-mixed")

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29517"))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        loss_fsdp, grad_fsdp = step(device, shard=True)
    finally:
        dist.destroy_process_group()
    largest = float((grad_fsdp - grad32).abs().max() / grad32.abs().max())
    print(f"FSDP2, 1 process: loss {loss_fsdp:.6f} (unsharded {loss32:.6f}); largest gradient difference "
          f"{largest:.2e} of the largest gradient (bound 1e-5)")
    if abs(loss_fsdp - loss32) > 1e-5 * abs(loss32) or largest > 1e-5:
        failures.append("fsdp")
    print("all checks passed" if not failures else f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    run_entry_point(lambda: sys.exit(main()))
