"""The fused vocabulary step (model/nlp/vocab_step.py) against its oracle twins: plain autograd on the
same formulas, and the current thinking path of the whole EBT (per-step logits, energies, losses, every
parameter's second-order gradient, alpha's), in float64."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from model.config import EBT_TYPES, EBTConfig, TransformerConfig
from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp import vocab_step
from model.nlp.ebt import EBT_NLP
from model.nlp.vocab_step import (DEFAULT_CHUNK_MB, PreviousStep, WeightGradHandoff, chunk_rows, embed_probabilities,
                                  linear_cross_entropy, think_step_loss, token_weights)

V, PAD = 29, 28
TINY = dict(vocab_size=V, context_length=6, embedding_dim=16, num_transformer_blocks=1,
            multiheaded_attention_heads=2, pad_token_id=PAD, mcmc_num_steps=2, mcmc_step_size=5.0,
            normalize_initial_condition=True, mcmc_step_size_learnable=True)  # the paper's settings


def close(a, b, tol=1e-9):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.fixture(autouse=True)
def vocabulary_tiles(monkeypatch):
    """Products over the vocabulary in tiles of 8 columns (29 tokens: 4 tiles, the last one short), so that the
    tests cover the CPU tiling that a 50k vocabulary gets."""
    monkeypatch.setattr(vocab_step, "VOCAB_TILE", 8)


# ----------------------------------------------------------------------------- the operations alone

@pytest.mark.parametrize("vocab_first", [True, False])
@pytest.mark.parametrize("per_row_step", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("z_grad", [False, True])
def test_step_operations_equal_autograd(vocab_first, per_row_step, smoothing, z_grad):
    torch.manual_seed(0)
    N, D, rows = 7, 5, 3  # 3 chunks, the last one short
    dt = torch.float64
    W = torch.randn((V, D) if vocab_first else (D, V), dtype=dt, requires_grad=True)
    z = torch.randn(N, V, dtype=dt, requires_grad=z_grad)
    A = torch.randn(D, D, dtype=dt, requires_grad=True)
    alpha = torch.tensor(2.0, dtype=dt, requires_grad=True)
    step = alpha * (0.5 + torch.rand(N, 1, dtype=dt)) if per_row_step else alpha * 1
    targets = torch.randint(0, V, (N,))
    targets[2] = PAD
    M = W if vocab_first else W.t()
    inputs = [W, A, alpha] + ([z] if z_grad else [])

    p = torch.softmax(z, -1)
    s = p - step * (torch.tanh(p @ M @ A) @ M.t())  # a stand-in dE/de that depends on e
    reference = F.cross_entropy(s, targets, ignore_index=PAD, label_smoothing=smoothing)
    expected = torch.autograd.grad(reference, inputs, retain_graph=True)

    e, p = embed_probabilities(z * 1, W, vocab_first, rows)  # z * 1: the operation uses up its input
    loss, state = think_step_loss(torch.tanh(e @ A), W, vocab_first, step, targets, token_weights(targets, PAD),
                                  rows, base=p, smoothing=smoothing)
    close(loss, reference)
    close(state, s.detach())
    for a, b in zip(torch.autograd.grad(loss, inputs), expected):
        close(a, b)


@pytest.mark.parametrize("vocab_first", [True, False])
@pytest.mark.parametrize("objective", ["scaled loss", "energy only", "both"])
def test_weight_gradient_handed_to_the_embedding_backward_equals_autograd(vocab_first, objective):
    """With a WeightGradHandoff the loss's part of W's gradient leaves through the embedding's backward:
    scaled by the loss's coefficient, and left out when the loss is not part of the objective."""
    torch.manual_seed(1)
    N, D, rows = 7, 5, 3
    dt = torch.float64
    W = torch.randn((V, D) if vocab_first else (D, V), dtype=dt, requires_grad=True)
    z = torch.randn(N, V, dtype=dt)
    A = torch.randn(D, D, dtype=dt, requires_grad=True)
    targets = torch.randint(0, V, (N,))
    M = W if vocab_first else W.t()

    def total(loss, energy):
        return {"scaled loss": 0.37 * loss, "energy only": energy, "both": 0.37 * loss + energy}[objective]

    p = torch.softmax(z, -1)
    h = torch.tanh(p @ M @ A)
    reference = F.cross_entropy(p - 2.0 * (h @ M.t()), targets)
    expected = torch.autograd.grad(total(reference, h.square().sum()), [W, A])

    handoff = WeightGradHandoff()
    e, p = embed_probabilities(z.clone(), W, vocab_first, rows, handoff)
    h = torch.tanh(e @ A)
    loss, _ = think_step_loss(h, W, vocab_first, 2.0, targets, token_weights(targets, PAD), rows, base=p,
                              handoff=handoff)
    for a, b in zip(torch.autograd.grad(total(loss, h.square().sum()), [W, A]), expected):
        close(a, b)
    assert handoff.grad is None  # released


@pytest.mark.parametrize("per_row_step", [False, True])
def test_state_recomputed_from_the_previous_step_gives_the_saved_states_gradients(per_row_step):
    """Two steps; the second embedding recomputes its soft-max from the first step's (PreviousStep) instead of
    saving it: the same gradients as saving it, and its own soft-max's buffer is free to be overwritten."""
    torch.manual_seed(2)
    N, D, rows = 7, 5, 3
    dt = torch.float64
    W = torch.randn(D, V, dtype=dt, requires_grad=True)
    A = torch.randn(D, D, dtype=dt, requires_grad=True)
    alpha = torch.tensor(2.0, dtype=dt, requires_grad=True)
    scale = 0.5 + torch.rand(N, 1, dtype=dt) if per_row_step else 1.0
    targets = torch.randint(0, V, (N,))
    weights = token_weights(targets, PAD)
    z0 = torch.randn(N, V, dtype=dt)

    def two_steps(recompute):
        step = alpha * scale
        e, p0 = embed_probabilities(z0.clone(), W, False, rows)
        g0 = torch.tanh(e @ A)
        loss0, z1 = think_step_loss(g0, W, False, step, targets, weights, rows, base=p0)
        e, _ = embed_probabilities(z1, W, False, rows, previous=PreviousStep(p0, g0, step) if recompute else None)
        loss1, _ = think_step_loss(torch.tanh(e @ A), W, False, step, targets, weights, rows, base=z1)
        return loss0 + loss1, z1

    expected = torch.autograd.grad(two_steps(False)[0], [W, A, alpha])
    total, p1 = two_steps(True)
    with torch.no_grad():
        p1.fill_(float("nan"))  # not saved: the backward recomputes it
    for a, b in zip(torch.autograd.grad(total, [W, A, alpha]), expected):
        close(a, b)


def test_linear_cross_entropy_equals_logits_and_cross_entropy():
    torch.manual_seed(0)
    h = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (9,))
    targets[0] = PAD
    reference = F.cross_entropy(h @ W.t(), targets, ignore_index=PAD)
    loss = linear_cross_entropy(h, W, targets, PAD, rows=4)
    close(loss, reference)
    for a, b in zip(torch.autograd.grad(loss, [h, W]), torch.autograd.grad(reference, [h, W])):
        close(a, b)


def test_chunk_rows_follows_the_budget():
    assert chunk_rows(50277, 8.0, "cpu") == 41  # 8 MB of float32 rows of 50,277
    assert chunk_rows(50277, None, "cpu") == chunk_rows(50277, DEFAULT_CHUNK_MB["cpu"], "cpu")
    assert chunk_rows(50277, None, "cuda") == 1024 * 2**20 // (4 * 50277)
    assert chunk_rows(10**9, 0.001, "cpu") == 1  # never zero rows


# ----------------------------------------------------------------------------- the whole EBT, both paths

S2_OPTIONS = {
    "system1": {},
    "random_step_size": dict(randomize_mcmc_step_size_scale=2.0),
    "random_step_counts": dict(randomize_mcmc_num_steps=2, randomize_mcmc_num_steps_min=1),
    "langevin": dict(langevin_dynamics_noise=0.3),
    "truncate": dict(truncate_mcmc=True, mcmc_num_steps=3),
    "soften": dict(soften_target_prob_dist=0.2, mcmc_num_steps=3),
    "contrastive": dict(contrastive_loss=True, contrastive_loss_coeff=0.1),
    "replay": dict(mcmc_replay_buffer=True, mcmc_replay_buffer_size=4, batch_size_per_device=4,
                   mcmc_replay_buffer_sample_bs_percent=0.5),
    "unnormalized": dict(normalize_initial_condition=False),
    "reference_attention": dict(ebt_attention="reference"),
    "activation_checkpointing": dict(activation_checkpointing=True),
}


def twin_models(options):
    """Two identical float64 EBTs: the fused path and the current (autograd) one."""
    models = []
    for fused in ("on", "off"):
        torch.manual_seed(0)
        model = EBT_NLP(EBTConfig(**{**TINY, **options, "fused_vocab_loss": fused, "vocab_chunk_mb": 0.0005}))
        models.append(model.to(torch.float64))
    for p in models[0].parameters():  # adaln_zero starts at zero modulation: randomise so everything matters
        torch.nn.init.normal_(p, std=0.3) if p.dim() > 0 else None
    models[1].load_state_dict(models[0].state_dict())
    return models


def run(model, batch, phase, seed):
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    out = model.forward_loss_wrapper(batch, phase)
    if phase == "train":
        out["loss"].backward()
    return out


def assert_twins_agree(fused, current, batch, phase="train", seeds=(1,)):
    for seed in seeds:
        a, b = run(fused, batch, phase, seed), run(current, batch, phase, seed)
        for key in ("loss", "step_losses", "step_energies", "initial_final_pred_energies_gap"):
            close(a[key], b[key])
        if "final_energy" in b:
            close(a["final_energy"], b["final_energy"])
        if phase == "train":
            for (name, p), q in zip(fused.named_parameters(), current.parameters()):
                assert (p.grad is None) == (q.grad is None), name
                if p.grad is not None:
                    close(p.grad, q.grad)
            assert fused.alpha.grad is not None and fused.alpha.grad.abs() > 0


def token_batch(rows=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V - 1, (rows, TINY["context_length"] + 1), generator=generator)
    ids[0, -2:] = PAD
    return {"input_ids": ids}


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
@pytest.mark.parametrize("tied", [False, True])
def test_fused_equals_current_for_every_ebt_type_and_embedding(ebt_type, tied):
    fused, current = twin_models(dict(ebt_type=ebt_type, vocab_to_embed_uses_prob_dist=tied))
    assert_twins_agree(fused, current, token_batch(), "train")
    assert_twins_agree(fused, current, token_batch(seed=1), "valid")


@pytest.mark.parametrize("option", list(S2_OPTIONS))
def test_fused_equals_current_with_system2_training(option):
    fused, current = twin_models(S2_OPTIONS[option])
    seeds = (1, 2, 3) if option in ("random_step_counts", "replay") else (1,)  # several schedules / buffer states
    assert_twins_agree(fused, current, token_batch(), "train", seeds)
    assert_twins_agree(fused, current, token_batch(seed=1), "valid")


def test_fused_equals_current_with_learnable_langevin_noise():
    fused, current = twin_models(dict(langevin_dynamics_noise=0.3, langevin_dynamics_noise_learnable=True))
    for model in (fused, current):
        model.warm_up_finished()
    assert_twins_agree(fused, current, token_batch(), "train")
    assert fused.langevin_dynamics_noise_std.grad.abs() > 0


def test_fused_states_are_the_current_logits():
    fused, current = twin_models({})
    inputs, targets = token_batch()["input_ids"][:, :-1], token_batch()["input_ids"][:, 1:]
    torch.manual_seed(1)
    a = fused.think_with_losses(inputs, targets, learning=False, final_energy=True, keep_states=True)
    torch.manual_seed(1)
    b = current(inputs, learning=False, final_energy=True)
    for x, y in zip(a.states + a.energies + [a.final_energy], b.states + b.energies + [b.final_energy]):
        close(x, y)


def test_chunk_size_does_not_change_the_numbers():
    outs = []
    for chunk_mb in (0.0001, 0.001, 1.0):  # 1 row per chunk, a few, everything in one
        torch.manual_seed(0)
        model = EBT_NLP(EBTConfig(**TINY, vocab_chunk_mb=chunk_mb)).double()
        outs.append(run(model, token_batch(), "train", 1)["step_losses"])
    close(outs[0], outs[1])
    close(outs[0], outs[2])


def test_bf16_autocast_fused_stays_close_to_current():
    """bf16-mixed runs the same code (products in bf16, soft-max and loss in float32); CPU autocast here."""
    torch.manual_seed(0)
    fused = EBT_NLP(EBTConfig(**TINY))
    current = EBT_NLP(EBTConfig(**TINY, fused_vocab_loss="off"))
    current.load_state_dict(fused.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = run(fused, token_batch(), "train", 1), run(current, token_batch(), "train", 1)
    torch.testing.assert_close(a["step_losses"], b["step_losses"], rtol=0.01, atol=0.01)
    grads = [torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]) for m in (fused, current)]
    assert F.cosine_similarity(*grads, dim=0) > 0.99


def test_fallback_options_run_the_current_path():
    for flag in (dict(no_mcmc_detach=True), dict(clamp_futures_grad=True), dict(absolute_clamp=5.0)):
        assert not EBTConfig(**TINY, **flag).uses_fused_vocab_step
        with pytest.raises(ValueError, match=f"--{next(iter(flag))} .*use auto \\(or off\\)"):
            EBTConfig(**TINY, **flag, fused_vocab_loss="on")
    assert EBTConfig(**TINY).uses_fused_vocab_step
    assert not EBTConfig(**TINY, fused_vocab_loss="off").uses_fused_vocab_step


@pytest.mark.parametrize("bad, message", [(dict(vocab_chunk_mb=0), "must be positive"),
                                          (dict(fused_vocab_loss="yes"), "must be one of")])
def test_bad_settings_stop(bad, message):
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**bad)


# ----------------------------------------------------------------------------- the Transformer++

def test_transformer_fused_loss_equals_logits_and_cross_entropy():
    models = []
    for fused in ("auto", "off"):
        torch.manual_seed(0)
        models.append(Baseline_Transformer_NLP(dict(TINY, fused_vocab_loss=fused, vocab_chunk_mb=0.0005)).double())
    outs = [m.forward_loss_wrapper(token_batch(), "train") for m in models]
    close(outs[0]["loss"], outs[1]["loss"])
    for out in outs:
        out["loss"].backward()
    for p, q in zip(*(m.parameters() for m in models)):
        close(p.grad, q.grad)


# ----------------------------------------------------------------------------- the rest of the step

def test_large_cpu_noise_is_deterministic_and_independent_of_threads():
    from model.thinking import PARALLEL_NOISE_MIN, standard_normal

    shape = (2, PARALLEL_NOISE_MIN // 2 + 3)
    threads = torch.get_num_threads()
    draws = []
    try:
        for n in (2, 3):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            draws.append(standard_normal(shape, "cpu", torch.float32))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(draws[0], draws[1])
    assert abs(draws[0].mean()) < 1e-3 and abs(draws[0].std() - 1) < 1e-3
    torch.manual_seed(0)
    small = standard_normal((3, 5), "cpu", torch.float32)
    torch.manual_seed(0)
    assert torch.equal(small, torch.randn(3, 5))  # small draws are torch.randn's: the quickstart's numbers hold


def test_adamw_implementation_is_the_fastest_lightning_accepts():
    from utils.optimization import adamw_implementation

    params = list(torch.nn.Linear(2, 2).parameters())
    assert adamw_implementation(params, "32-true") == {"fused": True}
    assert adamw_implementation(params, "bf16-mixed") == {"foreach": True}  # Lightning will not clip a fused one
    assert adamw_implementation(params, "32-true", "fsdp") == {"foreach": True}
    torch.optim.AdamW(params, **adamw_implementation(params, "32-true")).step()  # torch supports it here


class VocabularyProducts(TorchDispatchMode):
    """Sums the FLOPs of the matrix products that have a vocabulary-sized dimension."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_):
            a, b = args[-2:]  # addmm(_): (input, mat1, mat2)
            if V in a.shape + b.shape:
                self.flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("tied", [False, True])
def test_fused_step_runs_the_methods_vocabulary_products_only(tied, monkeypatch):
    """Per thinking step the fused path runs five (B n) x V x D products (p @ M, G @ M^T, and the backward's
    three) plus one to recompute the last step's soft-max; the autograd twin runs a sixth per step, into the
    detached state (README, Speed and memory)."""
    monkeypatch.setattr(vocab_step, "VOCAB_TILE", 1024)  # whole products, recognisable by their V dimension
    fused, current = twin_models(dict(ebt_type="time_embed", vocab_to_embed_uses_prob_dist=tied))
    batch = token_batch()
    product = 2 * batch["input_ids"].shape[0] * TINY["context_length"] * V * TINY["embedding_dim"]
    steps = TINY["mcmc_num_steps"]
    for model, expected in ((fused, 5 * steps + 1), (current, 6 * steps)):
        counter = VocabularyProducts()
        with counter:
            run(model, batch, "train", seed=1)
        assert counter.flops == expected * product
