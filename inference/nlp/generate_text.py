"""Text generation for the EBT and the Transformer++, with a KV cache (the published code had none).

The Transformer++ keeps the usual per-layer keys/values. The EBT keeps its observed tokens' keys/values
(one cache per energy landscape that conditions them, e.g. time_embed) and, for every new token, thinks
about that single new position only, against the cache. `use_cache=False` is the slow twin: it reruns the
model over the whole prefix for every token and takes the last position, as the published code did.
"""
from dataclasses import dataclass

import torch

from model.nlp.ebt import EBT_NLP
from model.thinking import landscape_schedule


@dataclass
class SamplingConfig:
    """How the next token is picked from the logits (spec 4.3)."""
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


class TransformerDecoder:
    """Transformer++ with a key/value cache: prefill the prompt, then one token per call."""

    def __init__(self, model):
        self.model, self.cache = model, []

    def next_logits(self, new_tokens):
        """new_tokens (B, m): the prompt first, then each sampled token -> logits (B, V) for the next one."""
        hidden = self.model.transformer(self.model.embeddings(new_tokens), cache=self.cache)
        return self.model.output(hidden[:, -1])


class EBTDecoder:
    """EBT with its observed stream cached per landscape; thinks about the newest position only.

    The caches are preallocated for `capacity` tokens, so every decoding step has the same shapes; with
    compile=True the new token's keys/values and the thinking are torch.compile'd once for all positions
    (first-order only, which is all generation needs). compile=False runs the same code eagerly.
    The key of a cache is the landscape that conditions it (None for the default ebt_type).
    """

    def __init__(self, model, capacity, inference=None, compile=False):
        self.model, self.inference = model, inference
        trunk = model.transformer
        if inference is not None:
            landscapes = model.inference_plan(inference)[0]
        else:
            c = model.cfg
            landscapes = landscape_schedule(c.mcmc_num_steps, c.randomize_mcmc_num_steps, training=False)
        self.keys = sorted({self._key(k) for k in landscapes}, key=str)
        self.capacity = capacity + trunk.offset  # the time token of time_embed takes one entry
        self.caches, self.length = {}, 0  # length: valid cache entries, time token included
        self.observe_next, self.think = trunk.observe_next, self._think
        self.compiled = compile
        if compile:
            self.observe_next = _compiled(trunk.observe_next)
            self.think = _compiled(self._think)

    def _key(self, landscape):
        return landscape if self.model.transformer.observed_depends_on_landscape else None

    def next_logits(self, new_tokens):
        """new_tokens (B, m): the prompt first, then one sampled token per call -> logits (B, V)."""
        model, trunk = self.model, self.model.transformer
        observed = model.embeddings(new_tokens)
        if not self.caches:
            for key in self.keys:
                prompt = trunk.observe(observed, 0 if key is None else key)
                self.caches[key] = type(prompt)(*[[_preallocate(t, self.capacity) for t in ts]
                                                  for ts in (prompt.keys, prompt.values)])
            self.length = trunk.offset + new_tokens.shape[1]
        else:
            if new_tokens.shape[1] != 1:
                raise ValueError("after the prompt, EBTDecoder takes one new token per call")
            if self.length >= self.capacity:
                raise ValueError(f"the cache holds {self.capacity - trunk.offset} tokens; raise its capacity")
            length = self._scalar(self.length)
            for key in self.keys:
                cache = self.caches[key]
                for i, (k, v) in enumerate(self.observe_next(cache, observed, 0 if key is None else key, length)):
                    cache.keys[i][:, :, self.length] = k[:, :, 0]
                    cache.values[i][:, :, self.length] = v[:, :, 0]
            self.length += 1
        # the newest token's index among the tokens; its prediction sits at the next position
        return self.think(self._scalar(self.length - 1 - trunk.offset), new_tokens.shape[0])

    def _scalar(self, value):
        """Positions enter compiled code as 0-dim tensors so one graph serves them all."""
        return torch.tensor(value, device=self.model.alpha.device) if self.compiled else value

    def _think(self, position, B):
        model, trunk = self.model, self.model.transformer

        def energy_for(G):
            caches = self.caches if G == 1 else {k: _repeat_cache(c, G) for k, c in self.caches.items()}
            return lambda p, landscape: trunk.energies(caches[self._key(landscape)], model.embed_prediction(p),
                                                       landscape, start=position)

        device = model.alpha.device
        if self.inference is not None:
            result = model.advanced_think_about(energy_for, B, 1, device, self.inference)
        else:
            result = model.think_about(energy_for(1), B, 1, device)
        return result.states[-1][:, -1]


def _compiled(fn):
    """torch.compile drawing random numbers exactly as eager code does (same seed, same tokens with or
    without compilation). Shapes start static; a second batch size makes that dimension dynamic."""
    compiled = torch.compile(fn)

    def run(*args):
        with torch._inductor.config.patch(fallback_random=True):
            return compiled(*args)
    return run


def _preallocate(t, capacity):
    """(B, H, S, h) -> (B, H, capacity, h) holding t in its first S entries."""
    buffer = t.new_zeros(*t.shape[:2], capacity, t.shape[-1])
    buffer[:, :, :t.shape[2]] = t
    return buffer


def _repeat_cache(cache, G):
    return type(cache)([k.repeat_interleave(G, 0) for k in cache.keys],
                       [v.repeat_interleave(G, 0) for v in cache.values])


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
