"""Video models on feature sequences: losses, System 2 thinking, and cached rollouts equal to recomputing."""
import pytest
import torch

from inference.vid.generate_video import rollout, rollout_metrics, save_frame_strips
from model.config import EBT_TYPES, InferenceConfig
from model.vid.baseline_transformer import Baseline_Transformer_VID
from model.vid.ebt import EBT_VID

TINY = dict(feature_dim=24, embedding_dim=16, num_transformer_blocks=2, multiheaded_attention_heads=2,
            context_length=8, mcmc_step_size=5.0)


def features(B=2, T=9, seed=0):
    torch.manual_seed(seed)
    return torch.randn(B, T, 24).double()


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
def test_cached_ebt_rollout_equals_recomputing_the_prefix(ebt_type):
    torch.manual_seed(1)
    model = EBT_VID(dict(TINY, ebt_type=ebt_type, denoising_initial_condition="most_recent_embedding")).double()
    if ebt_type == "adaln_zero":  # zero-initialised energies would make every step a no-op
        for p in model.transformer.parameters():
            torch.nn.init.normal_(p, std=0.1)
    x = features()
    cached = rollout(model, x, condition_frames=3)
    uncached = rollout(model, x, condition_frames=3, use_cache=False)
    assert cached.shape == (2, 6, 24)
    torch.testing.assert_close(cached, uncached, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(cached[:, 0], x[:, 2])  # thinking moved the guess away from the copied frame


def test_cached_ebt_rollout_with_system2_thinking_equals_recomputing():
    torch.manual_seed(1)
    model = EBT_VID(dict(TINY, denoising_initial_condition="zeros")).double()
    icfg = InferenceConfig(infer_ebt_num_steps=3, infer_generated_samples=2)
    x = features()
    torch.testing.assert_close(rollout(model, x, 4, inference=icfg), rollout(model, x, 4, inference=icfg,
                                                                             use_cache=False))


@pytest.mark.parametrize("tied", [False, True])
def test_cached_transformer_rollout_equals_recomputing_the_prefix(tied):
    torch.manual_seed(1)
    model = Baseline_Transformer_VID(dict(TINY, weight_tie_vae_proj=tied)).double()
    x = features()
    torch.testing.assert_close(rollout(model, x, 2), rollout(model, x, 2, use_cache=False))
    if tied:
        assert not hasattr(model, "encoder_up_projection")


def test_rollout_rejects_impossible_condition_lengths():
    model = Baseline_Transformer_VID(TINY)
    with pytest.raises(ValueError, match="condition on 1..8 frames"):
        rollout(model, torch.randn(1, 9, 24), condition_frames=9)


@pytest.mark.parametrize("model_class", [EBT_VID, Baseline_Transformer_VID])
def test_training_on_a_fixed_batch_lowers_the_next_frame_loss(model_class):
    torch.manual_seed(0)
    model = model_class(dict(TINY, mcmc_step_size=1.0, denoising_initial_condition="most_recent_embedding"))
    x = torch.cumsum(torch.randn(4, 9, 24) * 0.3, dim=1)  # smooth trajectories: predictable next frames
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model.forward_loss_wrapper({"latents": x}, "train")
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_ebt_initial_guesses_and_best_of_n():
    x = features()[:, :8].float()  # the inputs of a 9-frame clip
    copy = EBT_VID(dict(TINY, denoising_initial_condition="most_recent_embedding"))
    torch.testing.assert_close(copy.initial_features(x), x)
    assert torch.equal(EBT_VID(dict(TINY, denoising_initial_condition="zeros")).initial_features(x),
                       torch.zeros_like(x))
    torch.manual_seed(0)
    model = EBT_VID(dict(TINY, langevin_dynamics_noise=0.5))
    icfg = InferenceConfig(infer_ebt_num_steps=2, infer_generated_samples=3)
    torch.manual_seed(4)
    chosen = model.advanced_inference(x, icfg)
    torch.manual_seed(4)
    every = model.advanced_inference(x.repeat_interleave(3, 0), InferenceConfig(infer_ebt_num_steps=2))
    best = every.final_energy.view(2, 3, 8).argmin(1)  # per position
    expected = every.states[-1].view(2, 3, 8, 24).gather(1, best[:, None, :, None].expand(2, 1, 8, 24)).squeeze(1)
    torch.testing.assert_close(chosen.states[-1], expected)
    with pytest.raises(ValueError, match="most_recent_embedding"):
        EBT_VID(dict(TINY, denoising_initial_condition="bogus"))


def test_system2_thinking_keeps_the_trained_prediction_clamp():
    x = features()[:, :8].float() * 0.5
    torch.manual_seed(0)
    model = EBT_VID(dict(TINY, mcmc_step_size=1e4, absolute_clamp=1.0))  # steps far outside [-1, 1] unclamped
    for icfg in (InferenceConfig(infer_ebt_num_steps=3), InferenceConfig(infer_ebt_num_steps=3,
                                                                         infer_generated_samples=2)):
        result = model.advanced_inference(x, icfg)
        assert all(state.abs().max() <= 1.0 for state in result.states[1:])
    model.cfg.absolute_clamp = 0.0
    assert model.advanced_inference(x, InferenceConfig(infer_ebt_num_steps=3)).states[-1].abs().max() > 1.0


def test_video_models_need_latents_or_an_encoder():
    with pytest.raises(ValueError, match="pre-encoded latents"):
        EBT_VID(TINY).forward_loss_wrapper({"video": torch.zeros(1, 9, 3, 8, 8)})


def test_rollout_metrics_and_frame_strips(tmp_path):
    predicted, true = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    metrics = rollout_metrics(predicted, true)
    assert metrics["mse_loss"] == 1.0 and metrics["smooth_l1_loss"] == 0.5 and metrics["mse_per_frame"] == [1.0] * 3
    frames = torch.rand(4, 3, 8, 8)
    path = save_frame_strips(str(tmp_path / "strip.png"), [frames, frames], gif_path=str(tmp_path / "strip.gif"))
    from PIL import Image
    assert Image.open(path).size == (4 * 10, 2 * 10)
    assert Image.open(tmp_path / "strip.gif").n_frames == 4


def test_activation_checkpointing_gives_the_same_second_order_gradients():
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = EBT_VID(dict(TINY, ebt_type="time_embed", mcmc_step_size_learnable=True,
                             activation_checkpointing=checkpointing))
        torch.manual_seed(1)
        model.forward_loss_wrapper({"latents": features().float()}, "train")["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "alpha" in grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")
