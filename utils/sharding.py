"""FSDP2 sharding of our models (--distributed_strategy fsdp, docs/method.md §10.5).

Each transformer block is its own FSDP2 unit and the root holds the rest (embeddings, heads), so a rank keeps
1/world of every weight, gradient and optimizer state between uses. Three things differ from a plain
`fully_shard(model)`, all because of how the EBT is called:
- the thinking loop differentiates the energy twice (autograd.grad(create_graph=True) inside the step, then
  the loss backward). FSDP2 frees the gathered weights after each backward by default, so the second one
  could meet freed storage (pytorch issue 172543); so can one after a no-grad forward of the same unit (the
  energy after thinking, logged on training steps: a segfault on CPU). So every unit keeps its weights
  gathered through the whole step (reshard_after_forward=False, `set_reshard_after_backward(False)`) and
  `reshard` frees them once the step's backward is done. The cost: during a step a rank holds all the
  weights the step uses (as DDP does); between steps, and always for gradients and optimizer state, 1/world.
- our models are entered through methods other than `forward` (forward_loss_wrapper, sampling pictures, the
  EBT trunk's keys_values), so those are registered as FSDP forward methods: each gathers its unit's weights.
  The cached decoders of test-time generation and rollouts reach into the model piece by piece; a test
  epoch runs on the whole model instead (`gathered`), which costs one gathered copy while it lasts.
- FSDP2 cannot shard 0-dim parameters (the EBT's step size alpha, the Langevin noise) and our frozen
  encoders are used by the data pipeline too: those stay whole on every rank. Those that get gradients have
  them averaged across ranks by `average_replicated_gradients`, as DDP would.
"""
import contextlib

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

ROOT_ENTRY_METHODS = ("forward_loss_wrapper", "sample", "denoise", "generate", "advanced_inference")
BLOCK_ENTRY_METHODS = ("keys_values",)


def block_types():
    from model.blocks import Block
    from model.img.backbone import AdaLNBlock

    return Block, AdaLNBlock


def replicated_parameters(model):
    """Parameters FSDP2 leaves whole on every rank: 0-dim ones and frozen ones."""
    return [p for p in model.parameters() if p.dim() == 0 or not p.requires_grad]


def shard_model(model, mesh):
    """Shard `model` in place over the 1-D device `mesh`; returns the parameters it keeps whole (a frozen one
    may become trainable later, e.g. the Langevin noise after the warm-up)."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    replicated = set(replicated_parameters(model))
    for module in model.modules():
        if isinstance(module, block_types()):
            fully_shard(module, mesh=mesh, reshard_after_forward=False,
                        ignored_params=replicated & set(module.parameters()))
            module.set_reshard_after_backward(False)
            for name in BLOCK_ENTRY_METHODS:
                if hasattr(module, name):
                    register_fsdp_forward_method(module, name)
    fully_shard(model, mesh=mesh, reshard_after_forward=False, ignored_params=replicated)
    model.set_reshard_after_backward(False)
    for name in ROOT_ENTRY_METHODS:
        if hasattr(model, name):
            register_fsdp_forward_method(model, name)
    return [p for p in model.parameters() if p in replicated]


def reshard(model):
    """Free the gathered weights of every unit (after the step's backward); each keeps its shard."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


@contextlib.contextmanager
def gathered(model):
    """The model with all its weights gathered on every rank (no-op unless sharded)."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()


def is_sharded(model):
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def average_replicated_gradients(parameters):
    """Mean of each replicated parameter's gradient over the ranks (the sharded ones are reduce-scattered)."""
    world = dist.get_world_size()
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def local(t):
    """This rank's part of a (possibly sharded) tensor, without communication."""
    return t.to_local() if isinstance(t, DTensor) else t


def full_tensor(t):
    """The whole tensor behind a (possibly sharded) parameter or gradient; a collective for sharded ones."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def clip_gradient_norm_(parameters, max_norm):
    """clip_grad_norm_ over sharded and replicated gradients together (torch's refuses to mix them)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    squares = sum(full_tensor(torch.linalg.vector_norm(g.float())) ** 2 for g in grads)
    total = squares.sqrt()
    scale = float(max_norm) / (float(total) + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return total
