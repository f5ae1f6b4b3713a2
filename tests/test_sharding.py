"""Data-parallel training on 2 CPU processes (gloo) computes what 1 process computes on the same global batch:
FSDP2 (utils/sharding.py) and DDP, through the EBT's second-order thinking step and the Transformer++.

Each case spawns 2 ranks that run one training step of a tiny model and compares the mean loss and every
parameter's gradient (gathered whole from its shards) with one process. Tolerance: float32, the two halves'
means summed in another order than the one-process mean, so an entry's rounding error scales with the largest
terms of its tensor, not with the entry: the largest differences seen are ~1.5e-7 of a tensor's largest
gradient (about one ulp); the bound is 1e-5 of it (about 100 ulps), plus rtol 1e-5.
"""
import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP
from utils import sharding

TINY = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39)
EBT = dict(TINY, mcmc_num_steps=2, mcmc_step_size=5.0, mcmc_step_size_learnable=True, normalize_initial_condition=True,
           ebt_type="time_embed")
# no randomness: rank r's rows think exactly as they do among all rows of one process
DETERMINISTIC_EBT = dict(EBT, denoising_initial_condition="zeros", no_mcmc_detach=True)
# System 2 training: random step sizes and step counts, learnable Langevin noise (a whole 0-dim parameter,
# which learns through the states between steps: no detach)
SYSTEM2_EBT = dict(EBT, randomize_mcmc_step_size_scale=2.0, randomize_mcmc_num_steps=1,
                   langevin_dynamics_noise=0.1, langevin_dynamics_noise_learnable=True, no_mcmc_detach=True)
MODELS = {"ebt": EBT_NLP, "transformer++": Baseline_Transformer_NLP}


class LossOf(torch.nn.Module):
    """DDP reduces the gradients of what runs through its forward: the model's loss, as Lightning calls it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.forward_loss_wrapper(batch, "train")


def one_step(model_name, hp, strategy, same_rows=False, rank=0, world=1):
    """(mean loss over ranks, {name: whole gradient}) of one training step on rows 0-3, split by rank."""
    torch.manual_seed(0)
    model = MODELS[model_name](dict(hp))
    torch.manual_seed(1)
    ids = torch.randint(0, 39, (4, 13))
    rows = ids if same_rows or world == 1 else ids[rank::world]
    replicated = []
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh

        replicated = sharding.shard_model(model, init_device_mesh("cpu", (world,)))
        step = model.forward_loss_wrapper
    elif strategy == "ddp":
        step = torch.nn.parallel.DistributedDataParallel(LossOf(model))
    else:
        step = LossOf(model)
    if hp.get("langevin_dynamics_noise_learnable"):
        model.warm_up_finished()  # the noise learns from the end of the warm-up on
    params = dict(model.named_parameters())  # FSDP's shards: inside a step the module shows gathered weights
    torch.manual_seed(2)  # the same thinking noise on every rank (same_rows) and in the one process
    out = step({"input_ids": rows}, "train") if strategy == "fsdp" else step({"input_ids": rows})
    out["loss"].backward()
    loss = out["loss"].detach().clone()
    if strategy == "fsdp":
        sharding.average_replicated_gradients(replicated)
        sharding.reshard(model)
    if world > 1:
        dist.all_reduce(loss)
        loss /= world
    return loss, {n: sharding.full_tensor(p.grad).clone() for n, p in params.items() if p.grad is not None}


def _rank(rank, world, port, function, args, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = function(*args, rank=rank, world=world)
        if rank == 0:
            torch.save(result, path)
    finally:
        # every rank's collectives (FSDP's reduce-scatters run on gloo's threads) end before the group does: a rank
        # that tore it down early aborted its peer ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()
    # A spawned rank's normal exit finalizes the interpreter, which destroys gloo's and FSDP's remaining C++
    # objects in no set order; about one case in a hundred aborted with "terminate called without an active
    # exception" (a C++ thread object destroyed while running). The rank's work is done: it leaves at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_ranks(tmp_path, function, *args):
    """function(*args, rank=, world=2) on 2 gloo processes; rank 0's result."""
    path = str(tmp_path / "rank0.pt")
    mp.spawn(_rank, args=(2, free_port(), function, args, path), nprocs=2)
    return torch.load(path)


CASES = [("ebt", DETERMINISTIC_EBT, False), ("transformer++", TINY, False), ("ebt", SYSTEM2_EBT, True),
         ("ebt", dict(DETERMINISTIC_EBT, activation_checkpointing=True), False)]
IDS = ["ebt-halves", "transformer++-halves", "ebt-system2-same-rows", "ebt-activation-checkpointing-halves"]


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
@pytest.mark.parametrize("model_name, hp, same_rows", CASES, ids=IDS)
def test_two_ranks_compute_the_gradients_of_one_process(tmp_path, strategy, model_name, hp, same_rows):
    """halves: each rank thinks about half of the rows; same-rows: both think about all rows with the same
    noise (System 2's draws cannot be split by row), which still checks the reduction and the double backward."""
    loss, grads = two_ranks(tmp_path, one_step, model_name, hp, strategy, same_rows)
    expected_loss, expected = one_step(model_name, hp, "single")
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == expected.keys()
    if model_name == "ebt":
        assert "alpha" in grads  # the step size learns through the second-order graph, kept whole under FSDP
    if hp.get("langevin_dynamics_noise_learnable"):
        assert "langevin_dynamics_noise_std" in grads
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-5 * float(grad.abs().max()),
                                   msg=lambda m, name=name: f"{name}: {m}")


def layout(hp, rank=0, world=1):
    """{name: ("shard" or "whole", this rank's shape)} of a sharded EBT's parameters."""
    from torch.distributed.device_mesh import init_device_mesh

    model = EBT_NLP(dict(hp))
    sharding.shard_model(model, init_device_mesh("cpu", (world,)))
    return {n: ("shard", tuple(p.to_local().shape)) if isinstance(p, sharding.DTensor) else ("whole", tuple(p.shape))
            for n, p in model.named_parameters()}


def test_each_rank_keeps_half_of_every_weight_and_the_step_size_whole(tmp_path):
    shards = two_ranks(tmp_path, layout, DETERMINISTIC_EBT)
    assert shards["transformer.layers.0.attention.wqkv.weight"] == ("shard", (48, 32))  # of (96, 32)
    assert shards["embeddings.weight"] == ("shard", (20, 32))  # the root's own weights too
    assert shards["alpha"] == ("whole", ())


IMAGE = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "mnist", "--image_dims", "16", "16",
         "--patch_size", "4", "--denoise_images_noise_level", "0.1", "--diffusion_steps", "100", "--model_size", "4xs",
         "--override_embedding_dim", "32", "--peak_learning_rate", "2e-3", "--log_image_every_n_steps", "20"]
VIDEO = ["--modality", "VID", "--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--image_dims", "32", "32",
         "--pixel_pooling", "2", "--context_length", "7", "--model_size", "4xs", "--override_embedding_dim", "32"]
SHORT = ["--max_steps", "2", "--warm_up_steps", "1", "--batch_size_per_device", "4", "--val_check_interval", "2",
         "--limit_val_batches", "1", "--limit_test_batches", "1", "--log_every_n_steps", "1", "--num_workers", "0",
         "--validation_split_pct", "0.01", "--no_wandb", "--num_cpu_processes", "2", "--distributed_strategy", "fsdp"]


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    IMAGE + ["--model_name", "dit"],  # its final test samples pictures through the whole (gathered) model
    VIDEO + ["--model_name", "ebt", "--ebt_type", "time_embed", "--mcmc_step_size", "10", "--mcmc_step_size_learnable",
             "--activation_checkpointing"]], ids=["image-dit", "video-ebt-activation-checkpointing"])
def test_fsdp_trains_the_other_modalities_on_two_processes(tmp_path, argv):
    import glob
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "train_model.py", *argv, *SHORT, "--log_dir", str(tmp_path)], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parameters identical on 2 ranks" in result.stdout  # the step sizes and other whole parameters
    (checkpoint,) = glob.glob(str(tmp_path / "*" / "*" / "checkpoints" / "last.ckpt"))
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 2
