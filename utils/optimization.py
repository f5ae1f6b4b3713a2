"""AdamW parameter groups and the warm-up + cosine schedule (docs/method.md §10.2, §10.3)."""
import math

import torch


# --optimizer: name -> class. The published code also had LARS and StableAdamW, which its scripts never used.
OPTIMIZERS = {"adamw": torch.optim.AdamW}


def build_param_groups(model, peak_lr, weight_decay, step_size_lr_multiplier, sharded=False):
    """Two groups: the EBT step size alpha (lr x multiplier, no weight decay) and every other parameter.

    Groups are formed by parameter identity, not by name: the published substring filter on "alpha"
    silently dropped any other parameter with "alpha" in its name (docs/method.md §12.4). A sharded model
    (FSDP) keeps the parameters it leaves whole apart ("model_whole"): one foreach update cannot mix shards
    and whole tensors.
    """
    from utils.sharding import DTensor

    alpha = getattr(model, "alpha", None)
    others = [p for p in model.parameters() if p is not alpha]
    whole = [p for p in others if sharded and not isinstance(p, DTensor)]
    others = [p for p in others if not (sharded and not isinstance(p, DTensor))]
    groups = [{"params": others, "lr": peak_lr, "weight_decay": weight_decay, "name": "model"}]
    if whole:
        groups.append({"params": whole, "lr": peak_lr, "weight_decay": weight_decay, "name": "model_whole"})
    if isinstance(alpha, torch.nn.Parameter):
        groups.insert(0, {"params": [alpha], "lr": peak_lr * step_size_lr_multiplier, "weight_decay": 0.0,
                          "name": "alpha"})
    return groups


def adamw_implementation(params, precision, strategy="ddp"):
    """Keyword arguments that pick torch's fastest AdamW for these parameters: `fused` (one kernel over all
    of them) for plain CPU/CUDA float tensors in full precision; `foreach` under mixed precision, where
    Lightning refuses to clip the gradients of a fused optimizer, and under FSDP's sharded parameters."""
    params = list(params)
    plain = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() and type(p) is torch.nn.Parameter
                for p in params)
    if "mixed" in str(precision) or strategy == "fsdp" or not plain:
        return {"foreach": True} if plain or strategy == "fsdp" else {}
    return {"fused": True}


def warmup_cosine_factor(step, warm_up_steps, max_scheduling_steps, min_lr_scale):
    """LR multiplier of optimizer step `step` (0-based), applied to each group's own peak lr.

    Warm-up: step k uses (k+1)/W of the peak, so step W-1 is at the peak. Then a cosine over
    max_scheduling_steps - W steps down to 1/min_lr_scale of the peak, where it stays.
    Fix of the published bug (docs/method.md §12.1): each group decays to ITS OWN peak / min_lr_scale
    (one shared eta_min sent the 1500x alpha group to the main group's floor).
    """
    if warm_up_steps > 0 and step < warm_up_steps:
        return (step + 1) / warm_up_steps
    floor = 1.0 / min_lr_scale
    decay_steps = max(1, max_scheduling_steps - warm_up_steps)
    t = min(step - max(warm_up_steps - 1, 0), decay_steps)  # past the end it stays at the floor
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t / decay_steps))


def build_lr_scheduler(optimizer, warm_up_steps, max_scheduling_steps, min_lr_scale):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warm_up_steps, max_scheduling_steps, min_lr_scale))
