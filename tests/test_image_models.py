"""Image models: shared DiT pieces, the bidirectional EBT energy, the DiT baseline and the Gaussian diffusion."""
import math

import pytest
import torch

from model.img import diffusion as gd
from model.config import image_model_size
from model.img.backbone import PatchEmbed, TimestepEmbedder, patchify, sincos_2d_table, unpatchify
from model.img.bidirectional_ebt import BidirectionalEBT
from model.img.dit import DiT
from model.thinking import think

TINY = dict(input_size=8, patch_size=2, in_channels=3, dim=32, depth=2, heads=4, mlp_ratio=1.0)  # 16 patches


def tiny_ebt(dtype=torch.float32):
    torch.manual_seed(0)
    return BidirectionalEBT(**TINY).to(dtype)


def randomize_zero_init(model):
    """Zero-initialised adaLN and output layers hide almost everything; give them random values."""
    for name, p in model.named_parameters():
        if "adaln_modulation" in name or "final_layer" in name:
            torch.nn.init.normal_(p, std=0.3)
    return model


def oracle(diffusion, x0, calls=None):
    """A perfect model: the eps that maps x_t exactly back to x0 (and v = 0); counts its calls."""
    def model_fn(x_t, t):
        if calls is not None:
            calls.append(int(t[0]))
        abar = diffusion.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return torch.cat([eps, torch.zeros_like(eps)], dim=1)
    return model_fn


# ----------------------------------------------------------------------------- shared pieces

@pytest.mark.parametrize("row,col", [(0, 0), (1, 2), (3, 1)])
def test_sincos_table_matches_mae_formula(row, col):
    dim, grid = 32, 4
    table = sincos_2d_table(dim, grid)
    assert table.shape == (grid * grid, dim)
    d = dim // 2  # per axis; first half encodes the column (x), second half the row (y)
    expected = []
    for position in (col, row):
        omegas = [1 / 10000 ** (2 * k / d) for k in range(d // 2)]
        expected += [math.sin(position * w) for w in omegas] + [math.cos(position * w) for w in omegas]
    torch.testing.assert_close(table[row * grid + col], torch.tensor(expected, dtype=table.dtype))


def test_positions_are_a_fixed_buffer_of_the_model():
    model = tiny_ebt()
    assert model.pos_embed.shape == (1, 16, 32) and not model.pos_embed.requires_grad
    assert "pos_embed" in dict(model.named_buffers())
    assert all("pos_embed" not in name for name, _ in model.named_parameters())
    torch.testing.assert_close(model.pos_embed[0], sincos_2d_table(32, 4).float())


def test_patch_tokens_follow_the_positional_order_and_unpatchify_inverts_patchify():
    torch.manual_seed(0)
    p, G, C = 2, 4, 3
    x = torch.randn(2, C, 8, 8)
    embed = PatchEmbed(8, p, C, 32)
    assert embed.proj.bias.abs().max() == 0
    tokens, patches = embed(x), patchify(x, p)  # (B, T, D), (B, T, p*p*C)
    assert tokens.shape == (2, 16, 32) and patches.shape == (2, 16, p * p * C)
    torch.testing.assert_close(unpatchify(patches, p, C), x, rtol=0, atol=0)
    for i, j in [(0, 1), (2, 3)]:
        pixel_block = x[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p]  # (B, C, p, p)
        torch.testing.assert_close(patches[:, i * G + j].view(2, p, p, C), pixel_block.permute(0, 2, 3, 1))
        by_hand = pixel_block.flatten(1) @ embed.proj.weight.flatten(1).T + embed.proj.bias
        torch.testing.assert_close(tokens[:, i * G + j], by_hand)


def test_dit_initialisation():
    model = tiny_ebt()
    qkv = model.blocks[0].attention.qkv.weight  # xavier-uniform over the fused (3D, D) matrix
    bound = math.sqrt(6 / (32 + 96))
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.9 * bound
    assert model.blocks[0].attention.qkv.bias.abs().max() == 0
    embedder = TimestepEmbedder(32)
    assert abs(embedder.mlp[0].weight.std().item() - 0.02) < 0.002


def test_timestep_frequency_embedding():
    emb = TimestepEmbedder.frequency_embedding(torch.tensor([0, 3]), 256)
    assert emb.shape == (2, 256)
    k = torch.arange(128, dtype=torch.float64)
    torch.testing.assert_close(emb[1, :128], torch.cos(3 * 10000 ** (-k / 128)))
    torch.testing.assert_close(emb[1, 128:], torch.sin(3 * 10000 ** (-k / 128)))


def test_size_presets():
    assert image_model_size("DiT-L/16") == (24, 16, 1024, 16)
    assert image_model_size("EBT-L/16") == (24, 16, 1024, 16)
    assert image_model_size("DiT-S/2") == (12, 6, 384, 2)
    assert image_model_size("EBT-XL/4") == (28, 16, 1152, 4)
    assert image_model_size("DiT-B/8") == (12, 12, 768, 8)
    with pytest.raises(ValueError, match="valid: .*DiT-S/2"):
        image_model_size("DiT-M/2")


# ----------------------------------------------------------------------------- bidirectional EBT

@pytest.mark.parametrize("batch", [1, 3])
def test_ebt_initial_energy_is_exactly_zero(batch):
    model = tiny_ebt()
    x = torch.randn(batch, 3, 8, 8, requires_grad=True)
    energy = model(x, torch.randn(1, 32))
    assert energy.shape == (batch,)
    assert energy.abs().max() == 0
    grad, = torch.autograd.grad(energy.sum(), x)
    assert grad.shape == x.shape and grad.abs().max() == 0


def test_ebt_energies_are_per_image_and_condition_broadcasts():
    model = randomize_zero_init(tiny_ebt(torch.float64))
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    condition = torch.randn(1, 32, dtype=torch.float64)
    energies = model(x, condition)
    torch.testing.assert_close(model(x, condition.expand(3, -1)), energies)
    torch.testing.assert_close(model(x[1:2], condition), energies[1:2])
    torch.testing.assert_close(energies, model.patch_energies(x, condition).mean(1))
    assert energies.abs().min() > 0


def test_ebt_double_backward():
    model = randomize_zero_init(tiny_ebt())
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    energy = model(x, torch.randn(2, 32))
    grad, = torch.autograd.grad(energy.sum(), x, create_graph=True)
    params = list(model.parameters())
    second = torch.autograd.grad(grad.pow(2).sum(), params)
    assert all(torch.isfinite(g).all() for g in second)
    named = dict(zip([n for n, _ in model.named_parameters()], second))
    assert named["blocks.0.attention.qkv.weight"].abs().sum() > 0
    assert named["patch_embed.proj.weight"].abs().sum() > 0


def test_ebt_learns_through_second_order_terms_from_a_zero_energy():
    """docs/method.md §7.2: with the zero head the first thinking step does nothing, yet the loss reaches the head."""
    model = tiny_ebt()
    clean = torch.rand(2, 3, 8, 8) * 2 - 1
    noised = clean + 0.3 * torch.randn_like(clean)
    condition = torch.randn(1, 32)
    result = think(lambda image, landscape: model(image, condition), noised, torch.tensor(1.0), [0, 1],
                   create_graph=True)
    torch.testing.assert_close(result.states[0], noised, rtol=0, atol=0)
    torch.nn.functional.smooth_l1_loss(result.states[-1], clean).backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0


def test_ebt_rejects_bad_inputs():
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        BidirectionalEBT(**{**TINY, "input_size": 10, "patch_size": 4})
    model = tiny_ebt()
    condition = torch.zeros(1, 32)
    with pytest.raises(ValueError, match="square"):
        model(torch.randn(1, 3, 8, 6), condition)
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 1, 8, 8), condition)
    with pytest.raises(ValueError, match="built for 8x8"):
        model(torch.randn(1, 3, 4, 4), condition)


# ----------------------------------------------------------------------------- DiT

@pytest.mark.parametrize("learn_sigma,channels", [(True, 6), (False, 3)])
def test_dit_output_shape_and_zero_output_at_init(learn_sigma, channels):
    torch.manual_seed(0)
    model = DiT(**TINY, learn_sigma=learn_sigma)
    out = model(torch.randn(2, 3, 8, 8), torch.tensor([0, 7]))
    assert out.shape == (2, channels, 8, 8)
    assert out.abs().max() == 0


def test_dit_uses_timestep_and_condition():
    torch.manual_seed(0)
    model = randomize_zero_init(DiT(**TINY, condition_dim=5))
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
    out = model(x, torch.tensor([1, 1]), y)
    assert (model(x, torch.tensor([2, 2]), y) - out).abs().max() > 1e-4
    assert (model(x, torch.tensor([1, 1]), torch.randn(2, 5)) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="pass the condition"):
        model(x, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        DiT(**TINY)(x, torch.tensor([1, 1]), y)


def test_dit_trains_and_samples_with_the_diffusion():
    torch.manual_seed(0)
    model = randomize_zero_init(DiT(**TINY))
    diffusion = gd.GaussianDiffusion(20)
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    losses = diffusion.training_losses(model, x0, torch.tensor([0, 13]))
    losses["loss"].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    calls = []
    sample = diffusion.ddim_sample_loop(lambda x, t: calls.append(1) or model(x, t), noise=torch.randn(2, 3, 8, 8),
                                        timestep_start=3)
    assert sample.shape == (2, 3, 8, 8) and len(calls) == 4


# ----------------------------------------------------------------------------- diffusion: schedule

def test_schedule_and_noise_levels():
    standard = torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(gd.linear_beta_schedule(1000), standard, rtol=0, atol=1e-15)
    scaled = gd.diffusion_for_noise_level(100, 0.1)  # int(100 / 0.1) = 1000 steps: the standard schedule
    assert scaled.num_timesteps == 1000
    torch.testing.assert_close(scaled.betas, standard, rtol=0, atol=1e-15)
    assert gd.test_timestep(0.1, 1000) == 99 and gd.test_timestep(0.2, 1000) == 199
    sqrt_abar = scaled.sqrt_alphas_cumprod
    assert abs(sqrt_abar[99] - 0.95) < 0.01 and abs(sqrt_abar[199] - 0.81) < 0.01  # docs/method.md §7.1
    assert abs(scaled.sqrt_one_minus_alphas_cumprod[99] - 0.32) < 0.01
    # trained at L = 0.2 with 100 steps: 500 steps with doubled betas; its last step ~ standard t = 199
    coarse = gd.diffusion_for_noise_level(100, 0.2)
    assert coarse.num_timesteps == 500
    torch.testing.assert_close(coarse.betas, 2 * torch.linspace(0.0001, 0.02, 500, dtype=torch.float64))
    assert abs(coarse.sqrt_alphas_cumprod[99] - sqrt_abar[199]) < 0.005


def test_q_sample_statistics():
    torch.manual_seed(0)
    diffusion = gd.GaussianDiffusion(1000)
    x0 = torch.full((4000, 1, 4, 4), 0.5)
    x_t = diffusion.q_sample(x0, torch.full((4000,), 199))
    abar = diffusion.alphas_cumprod[199].item()
    assert abs(x_t.mean().item() - 0.5 * math.sqrt(abar)) < 0.01
    assert abs(x_t.std().item() - math.sqrt(1 - abar)) < 0.01
    noise = torch.randn_like(x0)
    torch.testing.assert_close(diffusion.q_sample(x0, torch.zeros(4000, dtype=torch.long), noise),
                               math.sqrt(1 - 1e-4) * x0 + 1e-2 * noise)


# ----------------------------------------------------------------------------- diffusion: sampling

def noised_batch(diffusion, t, dtype=torch.float32):
    torch.manual_seed(0)
    x0 = (torch.rand(2, 3, 8, 8) * 1.8 - 0.9).to(dtype)  # inside [-1, 1]: clipping leaves x0 alone
    t = torch.full((2,), t)
    return x0, t, diffusion.q_sample(x0, t)


@pytest.mark.parametrize("t", [0, 99, 199])
def test_ddim_with_an_oracle_recovers_x0_in_t_plus_one_calls(t):
    diffusion = gd.GaussianDiffusion(1000)
    x0, _, x_t = noised_batch(diffusion, t)
    calls = []
    denoised = diffusion.ddim_sample_loop(oracle(diffusion, x0, calls), noise=x_t, timestep_start=t)
    torch.testing.assert_close(denoised, x0, rtol=0, atol=1e-5)
    assert calls == list(range(t, -1, -1))


def test_ddim_step_against_a_hand_computation_and_eta_zero_is_deterministic():
    """x_{t-1} = sqrt(abar_{t-1}) x0_hat + sqrt(1 - abar_{t-1}) eps, x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
    from the standard 1000-step linear schedule written out here."""
    diffusion = gd.GaussianDiffusion(1000)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    abar = [math.prod(1 - b for b in betas[:i + 1]) for i in (49, 50)]
    torch.manual_seed(0)
    x_t = torch.randn(2, 3, 4, 4, dtype=torch.float64) * 0.3
    eps = torch.randn(2, 3, 4, 4, dtype=torch.float64) * 0.1
    model_fn = lambda x, t: torch.cat([eps, torch.zeros_like(eps)], dim=1)
    t = torch.full((2,), 50)
    x0_hat = (x_t - math.sqrt(1 - abar[1]) * eps) / math.sqrt(abar[1])
    expected = math.sqrt(abar[0]) * x0_hat + math.sqrt(1 - abar[0]) * eps
    step = diffusion.ddim_sample(model_fn, x_t, t, eta=0.0, clip_denoised=False)
    torch.testing.assert_close(step, expected, rtol=1e-9, atol=1e-9)
    noisy_model = lambda x, t: torch.cat([torch.tanh(x), torch.zeros_like(x)], dim=1)
    first = diffusion.ddim_sample_loop(noisy_model, noise=x_t, timestep_start=20)
    torch.manual_seed(123)  # the global RNG must not matter with eta 0
    torch.testing.assert_close(diffusion.ddim_sample_loop(noisy_model, noise=x_t, timestep_start=20), first,
                               rtol=0, atol=0)


def test_ancestral_step_mean_is_the_posterior_mean():
    diffusion = gd.GaussianDiffusion(1000)
    x0, t, x_t = noised_batch(diffusion, 99, torch.float64)
    out = diffusion.p_mean_variance(oracle(diffusion, x0), x_t, t)
    abar, abar_prev, beta = diffusion.alphas_cumprod[99], diffusion.alphas_cumprod[98], diffusion.betas[99]
    posterior_mean = (beta * abar_prev.sqrt() / (1 - abar) * x0
                      + (1 - abar_prev) * (1 - beta).sqrt() / (1 - abar) * x_t)
    torch.testing.assert_close(out["mean"], posterior_mean)
    torch.testing.assert_close(out["pred_x0"], x0)
    # v = 0: log variance halfway between log beta_t and the clipped log posterior variance
    posterior_variance = beta * (1 - abar_prev) / (1 - abar)
    torch.testing.assert_close(out["log_variance"], torch.full_like(x0, 0.5 * (beta.log() + posterior_variance.log())))
    sample = diffusion.p_sample(oracle(diffusion, x0), x_t, t, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(sample, out["mean"] + (0.5 * out["log_variance"]).exp() * noise)


def test_ancestral_loop_calls_and_noise_free_last_step():
    diffusion = gd.GaussianDiffusion(1000)
    x0, _, x_t = noised_batch(diffusion, 7, torch.float64)
    calls = []
    diffusion.p_sample_loop(oracle(diffusion, x0, calls), noise=x_t, timestep_start=7)
    assert calls == list(range(7, -1, -1))
    x0, _, x_1 = noised_batch(diffusion, 0, torch.float64)  # from t = 0: one call, the mean, no noise
    torch.testing.assert_close(diffusion.p_sample_loop(oracle(diffusion, x0), noise=x_1, timestep_start=0), x0)


def test_sampling_loop_arguments():
    diffusion = gd.GaussianDiffusion(10)
    calls = []
    model_fn = lambda x, t: calls.append(1) or torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])  # noqa: E731
    sample = diffusion.ddim_sample_loop(model_fn, shape=(2, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert sample.shape == (2, 3, 4, 4) and len(calls) == 10  # default: from N - 1
    with pytest.raises(ValueError, match="exactly one"):
        diffusion.p_sample_loop(model_fn)
    with pytest.raises(TypeError, match="noise="):
        diffusion.ddim_sample_loop(model_fn, torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        diffusion.ddim_sample_loop(model_fn, noise=torch.zeros(1, 3, 4, 4), timestep_start=10)
    with pytest.raises(ValueError, match="learn_sigma=True"):
        diffusion.ddim_sample_loop(lambda x, t: x, noise=torch.zeros(1, 3, 4, 4), timestep_start=1)
    calls.clear()
    diffusion.ddim_recurse(model_fn, torch.zeros(1, 3, 4, 4), timestep_start=4, recurse_n_times=2)
    assert len(calls) == (4 + 1) * (2 + 1)


# ----------------------------------------------------------------------------- diffusion: training loss

def test_training_losses_with_an_oracle():
    diffusion = gd.GaussianDiffusion(1000)
    torch.manual_seed(0)
    x0 = (torch.rand(4, 3, 8, 8) * 2 - 1).double()
    t = torch.tensor([0, 1, 99, 999])
    noise = torch.randn_like(x0)
    losses = diffusion.training_losses(oracle(diffusion, x0), x0, t, noise)
    assert set(losses) == {"loss", "mse", "vb"} and all(v.shape == (4,) for v in losses.values())
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses["mse"].max() < 1e-12
    assert losses["vb"].min() > -1e-9
    torch.testing.assert_close(losses["loss"], losses["mse"] + losses["vb"])


def test_variational_bound_trains_only_the_variance():
    diffusion = gd.GaussianDiffusion(100)
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    output = torch.nn.Parameter(0.1 * torch.randn(2, 6, 4, 4))
    losses = diffusion.training_losses(lambda x, t: output, x0, torch.tensor([0, 50]))
    losses["vb"].sum().backward()
    assert output.grad[:, :3].abs().max() == 0 and output.grad[:, 3:].abs().max() > 0
    output.grad = None
    losses["mse"].sum().backward()
    assert output.grad[:, 3:].abs().max() == 0 and output.grad[:, :3].abs().max() > 0


def test_kl_and_discretized_likelihood():
    mean, log_var = torch.randn(5), torch.randn(5)
    assert gd.normal_kl(mean, log_var, mean, log_var).abs().max() < 1e-7
    assert gd.normal_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0)) == 0.5
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)  # the 256 values of one 8-bit pixel
    for m, s in [(0.1, 0.3), (-0.95, 0.01), (0.0, 2.0)]:
        log_p = gd.discretized_gaussian_log_likelihood(levels, torch.full_like(levels, m),
                                                       torch.full_like(levels, math.log(s)))
        assert abs(log_p.exp().sum().item() - 1) < 1e-6
