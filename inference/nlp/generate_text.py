"""Text generation for the EBT and the Transformer++, with a KV cache (the published code had none).

The Transformer++ keeps the usual per-layer keys/values. The EBT keeps its observed tokens' keys/values
(one cache per energy landscape that conditions them, e.g. time_embed) and, for every new token, thinks
about that single new position only, against the cache. `use_cache=False` is the slow twin: it reruns the
model over the whole prefix for every token and takes the last position, as the published code did.
"""
from dataclasses import dataclass

import torch

from inference.decoders import EBTDecoder, TransformerDecoder
from model.nlp.ebt import EBT_NLP


@dataclass
class SamplingConfig:
    """How the next token is picked from the logits (docs/method.md §5.5)."""
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter


def sample_next_token(logits, sampling):
    """logits (B, V) -> token ids (B,)."""
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k > 0:
        kth = logits.topk(min(sampling.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1.0:  # nucleus: the smallest set of tokens whose mass reaches top_p
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1).squeeze(-1)


def full_prefix_logits(model, tokens, inference=None):
    """The slow twin: run the model over the whole prefix and take the last position. (B, L) -> (B, V)."""
    if isinstance(model, EBT_NLP):
        result = model.advanced_inference(tokens, inference) if inference is not None else model(tokens)
        return result.states[-1][:, -1]
    return model(tokens)[:, -1]


@torch.no_grad()
def generate(model, prompt_ids, max_new_tokens, sampling=SamplingConfig(), eos_token_id=None, use_cache=True,
             inference=None, context_length=None, compile=False):
    """Continue prompts of equal length. prompt_ids (B, P) -> (tokens (B, P + N), per-step logits (N, B, V)).

    Stops early once every row has produced eos; rows that finished keep emitting eos. With
    context_length, the prefix never exceeds it (generation stops there). compile: torch.compile the
    EBT's cached decoding step (worth it for long generations; the first token pays the compilation).
    """
    model.eval()
    tokens, all_logits = prompt_ids, []
    done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    if compile and not (use_cache and isinstance(model, EBT_NLP)):
        raise ValueError("compile applies to the EBT's cached decoding only (use_cache=True)")
    if context_length is not None and prompt_ids.shape[1] >= context_length:
        raise ValueError(f"the prompt has {prompt_ids.shape[1]} tokens and the model reads at most {context_length}: "
                         f"no room to generate; keep the prompt's last {context_length - 1} tokens")
    if use_cache and isinstance(model, EBT_NLP):
        capacity = prompt_ids.shape[1] + max_new_tokens
        if context_length is not None:  # compiled: one cache size for every prompt length, so one graph
            capacity = context_length if compile else min(capacity, context_length)
        decoder = EBTDecoder(model, capacity, inference, compile)
    elif use_cache:
        decoder = TransformerDecoder(model)
    new = prompt_ids
    for _ in range(max_new_tokens):
        if context_length is not None and tokens.shape[1] >= context_length:
            break
        logits = decoder.next_logits(new) if use_cache else full_prefix_logits(model, tokens, inference)
        next_token = sample_next_token(logits, sampling)
        if eos_token_id is not None:
            next_token = next_token.masked_fill(done, eos_token_id)
            done |= next_token == eos_token_id
        all_logits.append(logits)
        new = next_token[:, None]
        tokens = torch.cat([tokens, new], dim=1)
        if eos_token_id is not None and done.all():
            break
    return tokens, torch.stack(all_logits) if all_logits else torch.empty(0)
