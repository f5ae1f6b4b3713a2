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
