"""Training-FLOP estimates per token, in nanochat's convention, for every model (curves against compute).

A weight that multiplies a token's activations costs 2 FLOPs forward and 4 backward (gradients of the input
and of the weight): 6 per weight per token; attention adds 12 L D C per token (scores and mixing over a
context of C, forward and backward). Embedding lookups and fixed tables are free.

An EBT's thinking step on the prediction stream is a forward (2 per weight) plus the energy's input gradient
(2 more); training then differentiates the loss through both (second order), about twice their cost: 12 per
weight and 24 L D C per step. Its observed stream (autoregressive EBTs) is an ordinary forward and backward,
once per energy landscape that conditions it. With randomised step counts the training maximum is counted.

A "token" is what the transformer sees: a text token, a video frame, an image patch. Weights applied once
per sample (adaLN modulation from one condition vector, the timestep embedder) are spread over its tokens.
Frozen encoders (VAE, CLIP, DINOv2) are not counted: they run without gradients, or once when pre-encoded.
"""


def weight_count(module, exclude=(), only=None):
    """Parameters of `module` whose names start with none of `exclude` (and, with `only`, with one of it)."""
    return sum(p.numel() for name, p in module.named_parameters()
               if not name.startswith(tuple(exclude)) and (only is None or name.startswith(tuple(only))))


def transformer_flops(token_weights, layers, dim, context):
    """One forward and backward of a plain transformer, per token."""
    return 6 * token_weights + 12 * layers * dim * context


def ebt_flops(thinking_weights, layers, dim, context, steps, observed_weights=0, observed_passes=0):
    """An EBT training step per token: `steps` second-order thinking steps over `thinking_weights`, and
    `observed_passes` plain passes of an observed stream over `observed_weights`."""
    attention = layers * dim * context
    return observed_passes * (6 * observed_weights + 12 * attention) + steps * (12 * thinking_weights + 24 * attention)


def max_training_steps(cfg):
    """Most thinking steps of one training step under a ThinkingConfig (landscapes x random repeats)."""
    repeats = cfg.randomize_mcmc_num_steps + 1 if cfg.randomize_mcmc_num_steps > 0 else 1
    if cfg.randomize_mcmc_num_steps > 0 and cfg.randomize_mcmc_num_steps_final_landscape:
        return cfg.mcmc_num_steps - 1 + repeats
    return cfg.mcmc_num_steps * repeats


def autoregressive_ebt_flops(model, observed_input_weights=0):
    """Text and video EBTs: the AR trunk's observed stream (one pass per landscape for time_embed/adaln, else
    one) and the thinking steps through the trunk, the prediction embedding and the energy head.
    observed_input_weights: weights that embed observed inputs (video's down-projection; text: a lookup)."""
    c = model.cfg
    trunk = weight_count(model.transformer, exclude=("energy_head", "final_modulation", "time_embeddings"))
    thinking = weight_count(model, exclude=("embeddings", "transformer.time_embeddings", "alpha",
                                            "langevin_dynamics_noise_std"))
    passes = c.mcmc_num_steps if model.transformer.observed_depends_on_landscape else 1
    return ebt_flops(thinking, c.num_transformer_blocks, c.embedding_dim, c.context_length, max_training_steps(c),
                     observed_weights=trunk + observed_input_weights, observed_passes=passes)


def patch_transformer_weights(network, tokens, per_sample_extra=0):
    """Per-token weights of a PatchTransformer (DiT or image EBT): patch embedding, attention, MLP and output
    per patch; adaLN modulation (and `per_sample_extra`) once per image, spread over its `tokens` patches."""
    per_sample = weight_count(network, only=("timestep_embedder", "condition_projector"))
    per_sample += sum(weight_count(m) for name, m in network.named_modules() if name.endswith("adaln_modulation"))
    return weight_count(network) - per_sample + (per_sample + per_sample_extra) / tokens


def num_patches(network):
    return network.patch_embed.grid_size ** 2


def dit_flops(network):
    """A DiT's training FLOPs per patch: one forward and backward."""
    T = num_patches(network)
    return transformer_flops(patch_transformer_weights(network, T), len(network.blocks), network.pos_embed.shape[-1], T)


def image_ebt_flops(network, cfg, per_sample_extra=0):
    """A bidirectional image EBT's training FLOPs per patch: second-order thinking steps over the network."""
    T = num_patches(network)
    return ebt_flops(patch_transformer_weights(network, T, per_sample_extra), len(network.blocks),
                     network.pos_embed.shape[-1], T, max_training_steps(cfg))
