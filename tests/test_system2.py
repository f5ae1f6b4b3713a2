"""System 2 training options: each changes what it should (docs/method.md §4, §13)."""
import pytest
import torch

from model.nlp.ebt import EBT_NLP
from model.replay_buffer import CausalReplayBuffer
from model.thinking import landscape_schedule, think

TINY = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39, ebt_type="time_embed", mcmc_step_size=5.0,
            normalize_initial_condition=True, mcmc_step_size_learnable=True)  # the paper's settings


def batch(rows=3, seed=0):
    return {"input_ids": torch.randint(0, 39, (rows, 13), generator=torch.Generator().manual_seed(seed))}


def test_step_schedules_of_spec_12_5():
    torch.manual_seed(0)
    lengths = {len(landscape_schedule(1, 2, 2, training=True)) for _ in range(50)}
    assert lengths == {2, 3}  # training draws 2 or 3 steps on the single landscape
    assert landscape_schedule(1, 2, 2, training=False) == [0, 0, 0]  # evaluation: the maximum
    assert landscape_schedule(2, 2, 1, training=False) == [0, 1, 1, 1]
    for _ in range(20):
        schedule = landscape_schedule(3, 2, 1, final_landscape_only=True, training=True)
        assert schedule[:2] == [0, 1] and 1 <= schedule.count(2) <= 3
    assert landscape_schedule(3) == [0, 1, 2]


def test_random_step_size_is_per_row_and_position_in_range_only_in_training():
    model = EBT_NLP(dict(TINY, randomize_mcmc_step_size_scale=2.0))
    alpha = model.step_size((4, 6, 1), randomize=True)
    assert alpha.shape == (4, 6, 1)
    assert alpha.min() >= 2.5 and alpha.max() <= 10.0 and alpha.std() > 0
    assert model.step_size((4, 6, 1), randomize=False).shape == ()


def states_of(model, phase, seed=1):
    torch.manual_seed(seed)
    with torch.no_grad() if phase != "train" else torch.enable_grad():
        return model(batch()["input_ids"][:, :-1], learning=phase == "train").states


def test_langevin_noise_changes_the_path_and_no_noise_is_the_deterministic_path():
    torch.manual_seed(0)
    plain = EBT_NLP(TINY)
    noisy = EBT_NLP(dict(TINY, langevin_dynamics_noise=3.0))
    noisy.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        noisy.langevin_dynamics_noise_std.fill_(3.0)
    reference = states_of(plain, "valid")
    assert not torch.allclose(states_of(noisy, "valid")[-1], reference[-1])
    quiet = EBT_NLP(dict(TINY, langevin_dynamics_noise=3.0, no_langevin_during_eval=True))
    quiet.load_state_dict(noisy.state_dict())
    torch.testing.assert_close(states_of(quiet, "valid")[-1], reference[-1])


def test_learnable_langevin_noise_switches_on_after_warm_up():
    model = EBT_NLP(dict(TINY, langevin_dynamics_noise=1.0, langevin_dynamics_noise_learnable=True))
    assert not model.langevin_dynamics_noise_std.requires_grad
    model.warm_up_finished()
    assert model.langevin_dynamics_noise_std.requires_grad
    model.forward_loss_wrapper(batch(), "train")["loss"].backward()
    assert model.langevin_dynamics_noise_std.grad is not None


def linear_energy():
    w = torch.randn(5, requires_grad=True)
    return w, (lambda p, landscape: (p * w).sum(-1))


@pytest.mark.parametrize("detach", [True, False])
def test_no_detach_keeps_the_path_to_earlier_steps(detach):
    w, energy = linear_energy()
    z0 = torch.randn(2, 3, 5, requires_grad=True)
    result = think(energy, z0, torch.tensor(0.5), [0, 0], create_graph=True, detach_between_steps=detach)
    (grad,) = torch.autograd.grad(result.states[-1].sum(), z0, allow_unused=True)
    assert (grad is None) == detach


@pytest.mark.parametrize("truncate", [True, False])
def test_truncation_builds_the_second_order_graph_on_the_last_step_only(truncate):
    w, energy = linear_energy()
    z0 = torch.randn(2, 3, 5)
    result = think(energy, z0, torch.tensor(0.5), [0, 0], create_graph=True, truncate=truncate)
    # state_1 = z0 - 0.5 * dE/dz = z0 - 0.5 w: depends on w only through the energy gradient's graph
    first = torch.autograd.grad(result.states[0].sum(), w, allow_unused=True)[0]
    last = torch.autograd.grad(result.states[-1].sum(), w, allow_unused=True)[0]
    assert (first is None) == truncate and last is not None


def test_truncated_loss_is_the_last_step_loss():
    model = EBT_NLP(dict(TINY, truncate_mcmc=True, no_mcmc_detach=True, mcmc_num_steps=1,
                         randomize_mcmc_num_steps=2, randomize_mcmc_num_steps_min=2))
    out = model.forward_loss_wrapper(batch(), "train")
    assert out["loss"].item() == pytest.approx(out["step_losses"][-1].item())
    assert len(out["step_losses"]) in (2, 3)
    assert len(model.forward_loss_wrapper(batch(), "valid")["step_losses"]) == 3


def test_clamps_bound_the_gradient_and_the_state():
    w, energy = linear_energy()
    with torch.no_grad():
        w.copy_(torch.tensor([100.0, -100.0, 0.1, 0.0, 3.0]))
    z0 = torch.zeros(1, 1, 5)
    clamped = think(energy, z0, torch.tensor(1.0), [0], create_graph=False, grad_clamp=torch.tensor(2.0))
    torch.testing.assert_close(clamped.states[0], -torch.tensor([[[2.0, -2.0, 0.1, 0.0, 2.0]]]))
    bounded = think(energy, z0, torch.tensor(1.0), [0], create_graph=False, state_clamp=1.5)
    assert bounded.states[0].abs().max() == 1.5


def test_soften_target_prob_dist_smooths_the_first_step_most():
    model = EBT_NLP(dict(TINY, soften_target_prob_dist=0.3, mcmc_num_steps=3))
    logits, targets = torch.randn(2, 4, 40), torch.randint(0, 39, (2, 4))
    ce = lambda s: torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=s)
    torch.testing.assert_close(model.step_loss(logits, targets, 0, 3), ce(0.3))
    torch.testing.assert_close(model.step_loss(logits, targets, 1, 3), ce(0.15))
    torch.testing.assert_close(model.step_loss(logits, targets, 2, 3), ce(0.0))
    plain = EBT_NLP(dict(TINY, mcmc_num_steps=3))
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    smoothed_eval = model.forward_loss_wrapper(batch(), "valid")["step_losses"]
    torch.manual_seed(0)
    torch.testing.assert_close(smoothed_eval, plain.forward_loss_wrapper(batch(), "valid")["step_losses"])


def test_contrastive_loss_is_added_with_its_coefficient():
    model = EBT_NLP(dict(TINY, contrastive_loss=True, contrastive_loss_coeff=0.5))
    torch.manual_seed(3)
    out = model.forward_loss_wrapper(batch(), "train")
    assert out["contrastive_loss"] > 0
    expected = out["step_losses"].mean() + 0.5 * out["contrastive_loss"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_replay_buffer_ring_order_sampling_and_state_dict_round_trip():
    buffer = CausalReplayBuffer(capacity=3, row_length=4, vocab_size=2, sample_size=2)
    fresh = torch.arange(8).view(2, 4)
    rows, logits = buffer.sample(fresh)
    assert rows is fresh and logits is None and len(buffer) == 0
    for start in range(4):  # rows 0..3 added one at a time; row 0 is overwritten by row 3
        buffer.add(torch.full((1, 4), start), torch.full((1, 3, 2), float(start)))
    assert len(buffer) == 3 and sorted(buffer.tokens[:, 0].tolist()) == [1, 2, 3]
    rows, logits = buffer.sample(fresh)
    assert rows.shape == (4, 4) and torch.equal(rows[:2], fresh)  # fresh rows first
    for row, stored in zip(rows[2:], logits):  # each replayed row comes with its own logits
        assert stored.eq(float(row[0])).all()
    assert rows[2, 0] != rows[3, 0]  # sampled without replacement

    restored = CausalReplayBuffer(capacity=3, row_length=4, vocab_size=2, sample_size=2)
    restored.load_state_dict(buffer.state_dict())
    assert len(restored) == 3 and torch.equal(restored.tokens, buffer.tokens)


def test_replayed_rows_continue_from_their_stored_logits():
    model = EBT_NLP(dict(TINY, mcmc_replay_buffer=True, batch_size_per_device=4,
                         mcmc_replay_buffer_sample_bs_percent=0.5))
    first = model.forward_loss_wrapper(batch(4, seed=0), "train")
    assert len(model.replay_buffer) == 4 and first["count"] == 4 * 12
    second = model.forward_loss_wrapper(batch(4, seed=1), "train")
    assert second["count"] == 6 * 12  # 4 fresh + 2 replayed rows
    assert len(model.replay_buffer) == 8 and int(model.replay_buffer.count) == 8
    seen = {}
    original = model.initial_with_replayed  # both vocabulary paths start thinking here
    model.initial_with_replayed = lambda *args, **kw: seen.update(initial_logits=args[3]) or original(*args, **kw)
    model.forward_loss_wrapper(batch(4, seed=2), "train")
    assert seen["initial_logits"].shape == (2, 12, 40)
    assert "final_energy" in model.forward_loss_wrapper(batch(4), "valid")  # no replay outside training


def test_gradient_clamp_changes_after_warm_up():
    model = EBT_NLP(dict(TINY, clamp_futures_grad=True, clamp_futures_grad_max_change=9.0, clamp_max_after_warm_up=3.0))
    assert model.grad_clamp_max_change == 9.0
    model.warm_up_finished()
    assert model.grad_clamp_max_change == 3.0
