"""Parameter groups and the learning-rate schedule (docs/method.md §10.2, §10.3; a floor per group: §12.1)."""
import pytest
import torch

from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP
from utils.optimization import build_lr_scheduler, build_param_groups

TINY = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39, ebt_type="time_embed",
            normalize_initial_condition=True, mcmc_step_size_learnable=True)  # the paper's settings
PEAK, MULT, W, TOTAL, SCALE = 1e-3, 1500.0, 10, 110, 10.0


def test_every_parameter_is_in_exactly_one_group_and_alpha_has_its_own():
    model = EBT_NLP(TINY)
    model.register_parameter("dyt_alpha", torch.nn.Parameter(torch.ones(3)))  # the published filter dropped this
    groups = build_param_groups(model, PEAK, 0.01, MULT)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    alpha_group, model_group = groups
    assert alpha_group["params"] == [model.alpha]
    assert alpha_group["lr"] == pytest.approx(PEAK * MULT) and alpha_group["weight_decay"] == 0.0
    assert model_group["lr"] == PEAK and model_group["weight_decay"] == 0.01


def test_baseline_has_one_group():
    groups = build_param_groups(Baseline_Transformer_NLP(TINY), PEAK, 0.01, MULT)
    assert len(groups) == 1


def lrs_by_step(steps):
    model = EBT_NLP(TINY)
    optimizer = torch.optim.AdamW(build_param_groups(model, PEAK, 0.01, MULT))
    scheduler = build_lr_scheduler(optimizer, W, TOTAL, SCALE)
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def test_learning_rates_at_warm_up_start_peak_and_end():
    lrs = lrs_by_step(TOTAL + 20)
    alpha_peak = PEAK * MULT
    assert lrs[0] == pytest.approx([alpha_peak / W, PEAK / W])  # first step already trains (docs/method.md §10.3)
    assert lrs[W - 1] == pytest.approx([alpha_peak, PEAK])
    assert lrs[W] < lrs[W - 1]  # cosine starts right after the peak
    # each group ends at its own peak / min_lr_scale (the published code sent alpha to PEAK / SCALE)
    end = W - 1 + (TOTAL - W)
    assert lrs[end] == pytest.approx([alpha_peak / SCALE, PEAK / SCALE])
    assert lrs[-1] == pytest.approx([alpha_peak / SCALE, PEAK / SCALE])  # stays at the floor past the end
    middle = W - 1 + (TOTAL - W) // 2
    assert lrs[middle][1] == pytest.approx(PEAK / SCALE + (PEAK - PEAK / SCALE) / 2)
