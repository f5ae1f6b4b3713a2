"""The autoregressive EBT: fast path == reference path, independence of energies, the update rule."""
import pytest
import torch

from model.ar_ebt import AutoregressiveEBT
from model.config import EBT_TYPES, EBTConfig
from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP
from model.thinking import think

TINY = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39, mcmc_num_steps=2,
            normalize_initial_condition=True, mcmc_step_size_learnable=True)  # the paper's settings


def trunk(ebt_type, dtype=torch.float64):
    torch.manual_seed(0)
    model = AutoregressiveEBT(EBTConfig(**TINY, ebt_type=ebt_type)).to(dtype)
    if ebt_type == "adaln_zero":  # zero-initialised modulation would hide differences; randomise it
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.2)
    return model


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
@pytest.mark.parametrize("landscape", [0, 1])
def test_fast_path_equals_reference_attention(ebt_type, landscape):
    model = trunk(ebt_type)
    observed = torch.randn(3, 10, 32, dtype=torch.float64)
    predicted = torch.randn(3, 10, 32, dtype=torch.float64, requires_grad=True)

    fast = model.energies(model.observe(observed, landscape), predicted, landscape)
    reference = model.reference_energies(observed, predicted, landscape)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-10)

    # input gradients (what thinking follows) and the second-order parameter gradient (what training uses)
    g_fast, = torch.autograd.grad(fast.sum(), predicted, create_graph=True)
    g_ref, = torch.autograd.grad(reference.sum(), predicted, create_graph=True)
    torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-10)
    params = [p for p in model.parameters()]
    h_fast = torch.autograd.grad(g_fast.pow(2).sum(), params, allow_unused=True)
    h_ref = torch.autograd.grad(g_ref.pow(2).sum(), params, allow_unused=True)
    for a, b in zip(h_fast, h_ref):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_fast_path_is_second_order_safe_in_float32():
    """The fused kernel serves only the observed stream; training's double backward must go through."""
    model = trunk("time_embed", torch.float32)
    observed = torch.randn(2, 8, 32)
    predicted = torch.randn(2, 8, 32, requires_grad=True)
    energy = model.energies(model.observe(observed, 1), predicted, 1)
    grad, = torch.autograd.grad(energy.sum(), predicted, create_graph=True)
    grad.pow(2).sum().backward()
    assert all(p.grad is not None for p in model.layers.parameters())


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
def test_energy_depends_only_on_own_prediction_and_past_observations(ebt_type):
    model = trunk(ebt_type)
    n = 8
    observed = torch.randn(2, n, 32, dtype=torch.float64)
    predicted = torch.randn(2, n, 32, dtype=torch.float64)
    base = model.reference_energies(observed, predicted, 1)
    j = 4
    moved_prediction = predicted.clone()
    moved_prediction[:, j] += 1.0
    changed = (model.reference_energies(observed, moved_prediction, 1) - base).abs().amax(0) > 1e-12
    assert changed.tolist() == [i == j for i in range(n)]

    moved_observation = observed.clone()
    moved_observation[:, j] += 1.0
    changed = (model.reference_energies(moved_observation, predicted, 1) - base).abs().amax(0) > 1e-12
    assert changed.tolist() == [i >= j for i in range(n)]


def test_update_rule_is_softmax_minus_alpha_times_gradient_wrt_probabilities():
    """docs/method.md §2.3: z_next = softmax(z) - alpha * dE/dp at p = softmax(z), not z - alpha * dE/dz."""
    target = torch.randn(2, 3, 5)
    energy_fn = lambda p, landscape: ((p - target) ** 2).sum(-1) * (landscape + 1)
    z0 = torch.randn(2, 3, 5)
    alpha = 0.7
    result = think(energy_fn, z0, torch.tensor(alpha), [0, 1], create_graph=False,
                   normalize=lambda z: torch.softmax(z, -1), evaluate_final_energy=True)
    p0 = torch.softmax(z0, -1)
    z1 = p0 - alpha * 2 * (p0 - target)
    p1 = torch.softmax(z1, -1)
    z2 = p1 - alpha * 2 * 2 * (p1 - target)  # landscape 1 doubles the energy
    torch.testing.assert_close(result.states[0], z1)
    torch.testing.assert_close(result.states[1], z2)
    torch.testing.assert_close(result.energies[0], ((p0 - target) ** 2).sum(-1))
    # the energy after thinking: of softmax(z2), on the last landscape
    torch.testing.assert_close(result.final_energy, ((torch.softmax(z2, -1) - target) ** 2).sum(-1) * 2)


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
def test_nlp_ebt_fast_equals_reference_loss_and_gradients(ebt_type):
    losses, grads = {}, {}
    for attention in ("fast", "reference"):
        torch.manual_seed(0)
        model = EBT_NLP(dict(TINY, ebt_type=ebt_type, ebt_attention=attention, mcmc_step_size=5.0)).double()
        batch = {"input_ids": torch.randint(0, 39, (3, 13))}
        torch.manual_seed(1)
        out = model.forward_loss_wrapper(batch, "train")
        out["loss"].backward()
        losses[attention] = out["step_losses"]
        grads[attention] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses["fast"], losses["reference"], rtol=1e-5, atol=1e-5)
    assert grads["fast"].keys() == grads["reference"].keys()
    assert "alpha" in grads["fast"]  # the learnable step size is trained through the second-order graph
    for name in grads["fast"]:
        torch.testing.assert_close(grads["fast"][name], grads["reference"][name], rtol=1e-7, atol=1e-9)


def test_each_thinking_step_uses_its_own_landscape_and_the_cache_once_per_landscape(monkeypatch):
    model = EBT_NLP(dict(TINY, ebt_type="time_embed", mcmc_num_steps=3))
    seen, observed_runs = [], []
    energies, observe = model.transformer.energies, model.transformer.observe
    monkeypatch.setattr(model.transformer, "energies", lambda c, p, k: seen.append(k) or energies(c, p, k))
    monkeypatch.setattr(model.transformer, "observe", lambda o, k: observed_runs.append(k) or observe(o, k))
    model(torch.randint(0, 39, (2, 6)))
    assert seen == [0, 1, 2] and observed_runs == [0, 1, 2]

    model = EBT_NLP(dict(TINY, ebt_type="default", mcmc_num_steps=3))
    observed_runs, observe = [], model.transformer.observe
    monkeypatch.setattr(model.transformer, "observe", lambda o, k: observed_runs.append(k) or observe(o, k))
    model(torch.randint(0, 39, (2, 6)))
    assert len(observed_runs) == 1  # the default type's observed stream is shared by all steps


def test_evaluation_builds_no_second_order_graph_and_reports_the_energy_after_thinking():
    model = EBT_NLP(dict(TINY, ebt_type="time_embed"))
    out = model.forward_loss_wrapper({"input_ids": torch.randint(0, 39, (2, 13))}, "valid")
    assert not out["loss"].requires_grad
    assert out["step_losses"].shape == (2,) and out["step_energies"].shape == (2,)
    assert out["final_energy"].shape == () and torch.isfinite(out["final_energy"])
    assert "final_energy" not in model.forward_loss_wrapper({"input_ids": torch.randint(0, 39, (2, 13))}, "train")


def test_parameter_parity_with_transformer_plus_plus():
    """docs/method.md §3.5: the EBT's V x D vocab_to_embed mirrors the baseline's D x V head; it adds the energy head
    (D) and, for time_embed, the step table (steps x D)."""
    ebt = EBT_NLP(dict(TINY, ebt_type="time_embed"))
    baseline = Baseline_Transformer_NLP(TINY)
    count = lambda m: sum(p.numel() for p in m.parameters())
    D = TINY["embedding_dim"]
    assert count(ebt) - count(baseline) == D + TINY["mcmc_num_steps"] * D + 2  # + alpha, Langevin std


def test_xxs_parameter_count_with_neox_vocabulary():
    hp = dict(vocab_size=50277, context_length=256, embedding_dim=384, num_transformer_blocks=6,
              multiheaded_attention_heads=6)
    with torch.device("meta"):
        ebt, baseline = EBT_NLP(dict(hp, ebt_type="time_embed")), Baseline_Transformer_NLP(hp)
    for model in (ebt, baseline):
        assert 44.5e6 < sum(p.numel() for p in model.parameters()) < 45.0e6  # docs/method.md §3.5: ~44.8M



CHECKPOINTED_PATHS = {"fused": dict(fused_vocab_loss="on"), "autograd": dict(fused_vocab_loss="off"),
                      "no_detach": dict(no_mcmc_detach=True), "default_type": dict(ebt_type="default")}


def checkpointing_twin(checkpointing, options):
    torch.manual_seed(0)
    return EBT_NLP(dict(TINY, **{"ebt_type": "time_embed", "mcmc_step_size": 5.0, **options},
                        activation_checkpointing=checkpointing)).double()


@pytest.mark.parametrize("options", CHECKPOINTED_PATHS.values(), ids=CHECKPOINTED_PATHS.keys())
def test_activation_checkpointing_gives_the_same_second_order_gradients(options):
    grads = {}
    for checkpointing in (False, True):
        model = checkpointing_twin(checkpointing, options)
        torch.manual_seed(1)
        model.forward_loss_wrapper({"input_ids": torch.randint(0, 39, (3, 13))}, "train")["loss"].backward()
        grads[checkpointing] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert len(grads[False]) == len(grads[True])
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def saved_for_backward_bytes(model, batch):
    """Bytes of the distinct tensors (parameters aside) the training forward keeps for the backward pass."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    torch.manual_seed(1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.forward_loss_wrapper(batch, "train")
    return sum(storages.values())


@pytest.mark.parametrize("fused", ["on", "off"])
def test_activation_checkpointing_keeps_no_step_graph_until_the_backward(fused):
    """What --activation_checkpointing is for: the trunk's second-order graph of the thinking steps is not held
    from the forward to the backward pass (a longer context, so that the trunk's tensors dominate)."""
    hp = dict(context_length=48, mcmc_num_steps=3, fused_vocab_loss=fused)
    batch = {"input_ids": torch.randint(0, 39, (4, 49), generator=torch.Generator().manual_seed(0))}
    kept = [saved_for_backward_bytes(checkpointing_twin(checkpointing, hp), batch) for checkpointing in (False, True)]
    assert kept[1] < 0.4 * kept[0], kept
