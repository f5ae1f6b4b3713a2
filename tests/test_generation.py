"""KV-cached generation equals recomputing the whole prefix (both models, every ebt_type)."""
import pytest
import torch

from inference.nlp.generate_text import SamplingConfig, generate, sample_next_token
from model.config import EBT_TYPES, InferenceConfig
from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP

TINY = dict(vocab_size=40, context_length=24, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39, mcmc_step_size=5.0, normalize_initial_condition=True, mcmc_step_size_learnable=True,
            denoising_initial_condition="zeros")  # a deterministic initial guess: both paths think alike


def both_paths(model, inference=None, new_tokens=10):
    model.double()  # compare in float64: the paths differ only in summation order
    torch.manual_seed(0)
    prompt = torch.randint(0, 39, (3, 5))
    cached = generate(model, prompt, new_tokens, use_cache=True, inference=inference)
    uncached = generate(model, prompt, new_tokens, use_cache=False, inference=inference)
    return cached, uncached


@pytest.mark.parametrize("ebt_type", EBT_TYPES)
def test_cached_ebt_generation_equals_recomputing_the_prefix(ebt_type):
    torch.manual_seed(1)
    model = EBT_NLP(dict(TINY, ebt_type=ebt_type))
    if ebt_type == "adaln_zero":  # zero-initialised energies would make every step a no-op
        for p in model.transformer.parameters():
            torch.nn.init.normal_(p, std=0.1)
    (tokens, logits), (ref_tokens, ref_logits) = both_paths(model)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_cached_generation_with_system2_thinking_equals_recomputing():
    torch.manual_seed(1)
    model = EBT_NLP(dict(TINY, ebt_type="time_embed"))
    inference = InferenceConfig(infer_ebt_num_steps=3, infer_generated_samples=2)
    (tokens, logits), (ref_tokens, ref_logits) = both_paths(model, inference)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_cached_transformer_generation_equals_recomputing_the_prefix():
    torch.manual_seed(1)
    (tokens, logits), (ref_tokens, ref_logits) = both_paths(Baseline_Transformer_NLP(TINY))
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_generation_stops_at_end_of_text_and_at_the_context_length():
    model = Baseline_Transformer_NLP(TINY)
    prompt = torch.randint(0, 39, (1, 4)).repeat(2, 1)
    first = int(generate(model, prompt, 1)[0][0, -1])
    tokens, _ = generate(model, prompt, 20, eos_token_id=first)  # pretend the first greedy token is eos
    assert tokens.shape[1] == 5  # stopped right after every row emitted it
    tokens, _ = generate(model, prompt, 50, context_length=10)
    assert tokens.shape[1] == 10


@pytest.mark.parametrize("model_class", [Baseline_Transformer_NLP, EBT_NLP])
def test_a_prompt_that_fills_the_context_is_refused(model_class):
    # the Transformer++ returned the prompt unchanged, the EBT's cache failed to fit it
    prompt = torch.zeros(1, 10, dtype=torch.long)
    with pytest.raises(ValueError, match="the prompt has 10 tokens and the model reads at most 10: no room"):
        generate(model_class(TINY), prompt, 5, context_length=10)


def test_sampling_filters():
    logits = torch.tensor([[0.0, 1.0, 5.0, 4.9]])
    assert sample_next_token(logits, SamplingConfig()).item() == 2
    torch.manual_seed(0)
    drawn = {sample_next_token(logits, SamplingConfig(temperature=1.0, top_k=2)).item() for _ in range(100)}
    assert drawn == {2, 3}
    drawn = {sample_next_token(logits, SamplingConfig(temperature=1.0, top_p=0.4)).item() for _ in range(50)}
    assert drawn == {2}


@pytest.mark.slow
def test_compiled_ebt_decoding_equals_eager_decoding_with_random_thinking():
    """torch.compile'd decoding (one graph for every position) draws the same noise and gives the same
    tokens and logits as the eager decoder: random initial guesses, Langevin noise, best-of-N, sampling."""
    torch.manual_seed(1)
    model = EBT_NLP(dict(TINY, denoising_initial_condition="random_noise", langevin_dynamics_noise=0.3)).double()
    inference = InferenceConfig(infer_ebt_num_steps=2, infer_generated_samples=2, infer_accept_lower_energies=True)
    prompt = torch.randint(0, 39, (2, 5))
    runs = {}
    for compile in (True, False):
        torch.manual_seed(3)
        runs[compile] = generate(model, prompt, 6, SamplingConfig(temperature=1.0, top_k=10), inference=inference,
                                 compile=compile)
    assert torch.equal(runs[True][0], runs[False][0])
    torch.testing.assert_close(runs[True][1], runs[False][1], rtol=1e-9, atol=1e-9)


def test_compiled_decoding_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match="cached decoding only"):
        generate(Baseline_Transformer_NLP(TINY), torch.zeros(1, 3, dtype=torch.long), 2, compile=True)
