"""Cached decoders shared by text and video generation (the published code had none).

The Transformer++ keeps the usual per-layer keys/values. The EBT keeps its observed inputs' keys/values
(one cache per energy landscape that conditions them, e.g. time_embed) and, for every new token or frame,
thinks about that single new position only, against the cache. A model plugs in with `embed_observed`
(tokens -> embeddings, or frame features -> down-projected features) and, for the Transformer++, `head`.
"""
import torch

from model.thinking import landscape_schedule


class TransformerDecoder:
    """Transformer++ with a key/value cache: prefill the prompt, then one input per call."""

    def __init__(self, model):
        self.model, self.cache = model, []

    def next_logits(self, new_inputs):
        """new_inputs (B, m, ...): the prompt first, then each new token / frame -> the prediction for the next
        one: logits (B, V) for text, features (B, F) for video."""
        hidden = self.model.transformer(self.model.embed_observed(new_inputs), cache=self.cache)
        return self.model.head(hidden[:, -1])


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

    def next_logits(self, new_inputs):
        """new_inputs (B, m, ...): the prompt first, then one token / frame per call -> the thought-about
        prediction for the next one: logits (B, V) for text, features (B, F) for video."""
        model, trunk = self.model, self.model.transformer
        observed = model.embed_observed(new_inputs)
        self.latest = new_inputs[:, -1:]
        if not self.caches:
            for key in self.keys:
                prompt = trunk.observe(observed, 0 if key is None else key)
                self.caches[key] = type(prompt)(*[[_preallocate(t, self.capacity) for t in ts]
                                                  for ts in (prompt.keys, prompt.values)])
            self.length = trunk.offset + new_inputs.shape[1]
        else:
            if new_inputs.shape[1] != 1:
                raise ValueError("after the prompt, EBTDecoder takes one new token or frame per call")
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
        return self.think(self._scalar(self.length - 1 - trunk.offset), new_inputs.shape[0])

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
        # the newest inputs: a video EBT may start from the newest frame's features (most_recent_embedding)
        if self.inference is not None:
            result = model.advanced_think_about(energy_for, B, 1, device, self.inference, latest=self.latest)
        else:
            result = model.think_about(energy_for(1), B, 1, device, latest=self.latest)
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
