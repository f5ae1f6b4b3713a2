"""FLOP estimates per trained token (nanochat's convention), so runs can be compared at equal compute."""
import pytest

from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP

V, C, D, L, H = 40, 12, 16, 2, 2
TINY = dict(vocab_size=V, context_length=C, embedding_dim=D, num_transformer_blocks=L, multiheaded_attention_heads=H)
BLOCK = 4 * D * D + 3 * D * D + 2 * D  # q|k|v|o, SwiGLU (F = D: w1|w3 and w2), two RMSNorm weights


def test_transformer_flops_by_hand():
    matmul_weights = L * BLOCK + D + D * V  # blocks, final norm, output head (the embedding lookup is free)
    assert Baseline_Transformer_NLP(TINY).estimate_flops() == 6 * matmul_weights + 12 * L * D * C


@pytest.mark.parametrize("ebt_type, landscapes", [("default", 1), ("time_embed", 2)])
def test_ebt_flops_by_hand(ebt_type, landscapes):
    trunk = L * BLOCK + D  # blocks and final norm
    prediction = trunk + V * D + D  # + the prediction embedding (V x D) and the energy head (D x 1)
    attention = L * D * C
    expected = landscapes * (6 * trunk + 12 * attention) + 2 * (12 * prediction + 24 * attention)
    assert EBT_NLP(dict(TINY, ebt_type=ebt_type, mcmc_num_steps=2)).estimate_flops() == expected


def test_more_thinking_steps_cost_more_and_the_ebt_costs_several_transformers():
    one = EBT_NLP(dict(TINY, ebt_type="default", mcmc_num_steps=1)).estimate_flops()
    three = EBT_NLP(dict(TINY, ebt_type="default", mcmc_num_steps=3)).estimate_flops()
    assert three > one
    ratio = EBT_NLP(dict(TINY, mcmc_num_steps=2)).estimate_flops() / Baseline_Transformer_NLP(TINY).estimate_flops()
    assert 3 < ratio < 8  # the paper estimates ~6.66x for 2 thinking steps


# ----------------------------------------------------------------------------- image and video models

IMG = dict(image_dims=[16, 16], patch_size=4, embedding_dim=D, num_transformer_blocks=L,
           multiheaded_attention_heads=H, mlp_ratio=2, image_channels=3, mcmc_num_steps=2)


def per_patch_and_per_image(network):
    """By hand: weights applied to every patch, and those applied once per image (adaLN, timestep embedder)."""
    per_patch = sum(p.numel() for m in [network.patch_embed, network.final_layer.linear]
                    + [part for b in network.blocks for part in (b.attention, b.mlp)] for p in m.parameters())
    per_image = sum(p.numel() for m in [network.final_layer.adaln_modulation]
                    + [b.adaln_modulation for b in network.blocks] for p in m.parameters())
    if hasattr(network, "timestep_embedder"):
        per_image += sum(p.numel() for p in network.timestep_embedder.parameters())
    return per_patch, per_image


def test_image_flops_by_hand():
    from model.img.dit_denoise import DiT_IMG_Denoise
    from model.img.ebt_denoise import EBT_IMG_Denoise

    T = (16 // 4) ** 2
    attention = L * D * T
    dit = DiT_IMG_Denoise(IMG)
    patch, image = per_patch_and_per_image(dit.dit)
    assert dit.tokens_per_sample == T
    assert dit.estimate_flops() == pytest.approx(6 * (patch + image / T) + 12 * attention)
    ebt = EBT_IMG_Denoise(IMG)
    patch, image = per_patch_and_per_image(ebt.transformer)
    assert ebt.estimate_flops() == pytest.approx(2 * (12 * (patch + image / T) + 24 * attention))


@pytest.mark.parametrize("randomize, final_only, steps", [(0, False, 2), (2, False, 6), (2, True, 4)])
def test_randomised_step_counts_are_counted_at_their_training_maximum(randomize, final_only, steps):
    from model.flops import max_training_steps
    from model.img.ebt_denoise import EBT_IMG_Denoise

    model = EBT_IMG_Denoise(dict(IMG, randomize_mcmc_num_steps=randomize,
                                 randomize_mcmc_num_steps_final_landscape=final_only))
    assert max_training_steps(model.cfg) == steps
    assert model.estimate_flops() == pytest.approx(EBT_IMG_Denoise(dict(IMG, mcmc_num_steps=1)).estimate_flops()
                                                   * steps)


VID = dict(TINY, feature_dim=24, ebt_type="time_embed", mcmc_num_steps=2)


def test_video_flops_by_hand():
    from model.vid.baseline_transformer import Baseline_Transformer_VID
    from model.vid.ebt import EBT_VID

    down = 24 * D + D  # Linear(F, D) with bias
    trunk = L * BLOCK + D
    attention = L * D * C
    thinking = trunk + down + D  # the prediction goes through the down-projection, the trunk and the energy head
    expected = 2 * (6 * (trunk + down) + 12 * attention) + 2 * (12 * thinking + 24 * attention)
    assert EBT_VID(VID).estimate_flops() == expected
    untied = down + (D * 24 + 24) + L * BLOCK + D + D * D  # down, up, trunk + final norm, output Linear(D, D)
    assert Baseline_Transformer_VID(VID).estimate_flops() == 6 * untied + 12 * attention
    tied = down + L * BLOCK + D + D * D + 24 * D  # the tied up-projection (no bias) reuses the down weight
    tied_model = Baseline_Transformer_VID(dict(VID, weight_tie_vae_proj=True))
    assert tied_model.estimate_flops() == 6 * tied + 12 * attention
