"""The vocabulary side of a language model's step, fused and computed in row chunks.

One thinking step of the language EBT over V tokens (docs/method.md, model/thinking.py) is

    p  = softmax(z)               (z itself without normalize_initial_condition)       (N, V)
    e  = p @ M                    M (V, D): tied embeddings, or vocab_to_embed's weight    (N, D)
    G  = dE/de                    through the trunk, with the second-order graph          (N, D)
    z' = p - alpha * G @ M^T      the next logits (dE/dp = G @ M^T)                       (N, V)
    loss = cross_entropy(z', targets)

Autograd on these lines keeps p, the softmax output, dE/dp, z', log_softmax(z') and their gradients: a
dozen (N, V) tensors per step, and as many passes over them. The two operations here keep only the
state z' (the next step starts from it anyway) and recompute everything else chunk by chunk in their
hand-written backward passes:

- `embed_probabilities(z, M)`  -> e, plus p, a buffer `think_step_loss` turns into z' in place;
- `think_step_loss(p, z, G, M, alpha, ...)` -> loss, z', logsumexp(z').

Their inputs carry the second-order graph (G = dE/de was taken with create_graph=True), so the
operations themselves are only ever differentiated once. With p absent and alpha = -1 the second one is
a plain chunked linear cross-entropy, `linear_cross_entropy(h, W)`: the Transformer++'s head and loss.

Under autocast the matrix products run in the autocast dtype; the soft-max and loss math in float32 (or
float64, for gradient checks).
"""
import torch

DEFAULT_CHUNK_MB = {"cpu": 8.0, "cuda": 1024.0}  # per chunked (rows, V) buffer; CPU: stay cache-sized


def chunk_rows(vocab_size, chunk_mb, device):
    """Rows per chunk so that one (rows, V) float32 buffer takes about chunk_mb (device default if None)."""
    if chunk_mb is None:
        chunk_mb = DEFAULT_CHUNK_MB.get(torch.device(device).type, DEFAULT_CHUNK_MB["cuda"])
    return max(1, int(chunk_mb * 2**20 // (4 * vocab_size)))


def _chunks(n, rows):
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def _compute_dtype(t):
    device = t.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return t.dtype


def _mm(a, b, dtype):
    """a @ b computed in `dtype` (the autocast dtype, or the inputs'), returned in a's dtype."""
    return (a.to(dtype) @ b.to(dtype)).to(a.dtype)


def _add_mm_(out, a, b, dtype, alpha=1.0):
    """out += alpha * a @ b, the product computed in `dtype`."""
    if out.dtype == a.dtype == b.dtype == dtype:
        out.addmm_(a, b, alpha=alpha)
    else:
        out.add_(a.to(dtype) @ b.to(dtype), alpha=alpha)


def _vocab_by_dim(weight, vocab_first):
    """The (V, D) view of an embedding weight stored (V, D) (nn.Embedding) or (D, V) (nn.Linear(V, D))."""
    return weight if vocab_first else weight.t()


def _softmax_(buffer, z, lse):
    """buffer = exp(z - lse): the soft-max of z from its row log-sum-exp."""
    torch.sub(z, lse.unsqueeze(-1), out=buffer)
    return buffer.exp_()


def row_logsumexp(z, rows):
    """logsumexp(z, -1) for (N, V) z, chunk by chunk (no (N, V) temporary)."""
    return torch.cat([torch.logsumexp(z[r], dim=-1) for r in _chunks(z.shape[0], rows)])


def _softmax_backward(p, grad_p):
    """d loss / d z for p = softmax(z), given d loss / d p."""
    return p * (grad_p - (p * grad_p).sum(-1, keepdim=True))


class _EmbedProbabilities(torch.autograd.Function):
    """e = softmax(z) @ M in chunks; also returns softmax(z) as a plain buffer. Saves z, not p."""

    @staticmethod
    def forward(ctx, z, lse, weight, vocab_first, rows):
        dtype = _compute_dtype(z)
        with torch.autocast(z.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            e = z.new_empty(z.shape[0], m.shape[1], dtype=dtype)
            probs = torch.empty_like(z)
            for r in _chunks(z.shape[0], rows):
                p = _softmax_(probs[r], z[r], lse[r])
                e[r] = p.to(dtype) @ m
        ctx.save_for_backward(z, lse, weight)
        ctx.vocab_first, ctx.rows, ctx.dtype = vocab_first, rows, dtype
        ctx.mark_non_differentiable(probs)
        return e, probs

    @staticmethod
    def backward(ctx, grad_e, _grad_probs):
        z, lse, weight = ctx.saved_tensors
        dtype, vocab_first = ctx.dtype, ctx.vocab_first
        grad_z = torch.empty_like(z) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight) if ctx.needs_input_grad[2] else None
        with torch.autocast(z.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            p = torch.empty_like(z[:ctx.rows])
            for r in _chunks(z.shape[0], ctx.rows):
                pc = _softmax_(p[:r.stop - r.start], z[r], lse[r])
                h = grad_e[r].to(z.dtype)
                if grad_w is not None:  # dL/dM = p^T h, in the weight's own layout
                    if vocab_first:
                        _add_mm_(grad_w, pc.t(), h, dtype)
                    else:
                        _add_mm_(grad_w, h.t(), pc, dtype)
                if grad_z is not None:
                    grad_z[r] = _softmax_backward(pc, _mm(h, m.t(), dtype))
        return grad_z, None, grad_w, None, None


class _ThinkStepLoss(torch.autograd.Function):
    """state = p - step * G @ M^T (written into p's buffer, or a new one), and the weighted cross-entropy
    of `state` against the targets, chunk by chunk; see the module docstring.

    The loss is a leaf of the graph (differentiated once, by a scalar), so when gradients are wanted they
    are computed here, while each chunk is in cache; backward only scales them by d(total)/d(loss).
    """

    @staticmethod
    def forward(ctx, probs, z, lse_z, g, weight, step, targets, row_weights, smoothing, vocab_first, rows,
                normalize, keep_state, wants):
        need_z, need_g, need_w, need_step = wants
        dtype = _compute_dtype(g)
        N = g.shape[0]
        math_dtype = torch.promote_types(weight.dtype, torch.float32)
        per_row_step = torch.is_tensor(step) and step.dim() > 0
        with torch.autocast(g.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            V = m.shape[0]
            if probs is not None:
                state = probs  # the next state overwrites the soft-max buffer
            elif keep_state:
                state = torch.empty(N, V, device=g.device, dtype=math_dtype)
            scratch = None if keep_state else torch.empty(min(rows, N), V, device=g.device, dtype=math_dtype)
            d_state = torch.empty(min(rows, N), V, device=g.device, dtype=math_dtype) if any(wants) else None
            lse = torch.empty(N, device=g.device, dtype=math_dtype)
            row_loss = torch.empty(N, device=g.device, dtype=math_dtype)
            safe_targets = targets.clamp(0, V - 1).unsqueeze(-1)
            weights = row_weights.to(math_dtype)
            grad_z = torch.empty(N, V, device=g.device, dtype=math_dtype) if need_z else None
            grad_g = torch.empty(g.shape, device=g.device, dtype=math_dtype) if need_g else None
            grad_w = torch.zeros(weight.shape, device=g.device, dtype=math_dtype) if need_w else None
            grad_step = torch.empty(N, 1, device=g.device, dtype=math_dtype) if need_step else None
            for r in _chunks(N, rows):
                k = r.stop - r.start
                s = state[r] if keep_state else scratch[:k]
                g_r = g[r].to(math_dtype)
                step_r = step[r] if per_row_step else step
                gs = g_r * step_r
                if probs is not None:
                    _add_mm_(s, gs, m.t(), dtype, alpha=-1.0)
                elif z is not None:
                    s.copy_(z[r])
                    _add_mm_(s, gs, m.t(), dtype, alpha=-1.0)
                else:
                    torch.neg(_mm(gs, m.t(), dtype), out=s)
                lse[r] = torch.logsumexp(s, dim=-1)
                loss = lse[r] - (1 - smoothing) * s.gather(1, safe_targets[r]).squeeze(1)
                if smoothing:
                    loss = loss - smoothing / V * s.sum(-1)
                row_loss[r] = loss
                if d_state is None:
                    continue
                # d loss / d state = w * (softmax - (1 - eps) onehot - eps / V)
                ds = _softmax_(d_state[:k], s, lse[r]).mul_(weights[r].unsqueeze(-1))
                ds.scatter_add_(1, safe_targets[r], -(1 - smoothing) * weights[r].unsqueeze(-1))
                if smoothing:
                    ds.sub_((smoothing / V) * weights[r].unsqueeze(-1))
                if need_g or need_step:
                    d_gs = _mm(ds, m, dtype).neg_()  # d loss / d (step * G)
                    if need_g:
                        grad_g[r] = d_gs * step_r
                    if need_step:
                        grad_step[r] = (g_r * d_gs).sum(-1, keepdim=True)
                if need_w:  # state = -(step G) M^T + ...: dL/dM^T = -(step G)^T ds
                    if vocab_first:
                        _add_mm_(grad_w, ds.t(), gs, dtype, alpha=-1.0)
                    else:
                        _add_mm_(grad_w, gs.t(), ds, dtype, alpha=-1.0)
                if need_z:
                    if normalize:
                        p = _softmax_(torch.empty_like(ds), z[r], lse_z[r])
                        grad_z[r] = _softmax_backward(p, ds)
                    else:
                        grad_z[r] = ds
            total = (row_loss * weights).sum()
        if need_step and not per_row_step:
            grad_step = grad_step.sum().reshape(step.shape)
        grads = [grad_z, grad_g.to(g.dtype) if need_g else None, grad_w.to(weight.dtype) if need_w else None,
                 grad_step.to(step.dtype) if need_step else None]
        ctx.save_for_backward(*[t for t in grads if t is not None])
        ctx.present = [t is not None for t in grads]
        if probs is not None:
            ctx.mark_dirty(probs)
        outputs = (total, state, lse) if keep_state else (total, lse)
        ctx.mark_non_differentiable(*outputs[1:])
        return outputs

    @staticmethod
    def backward(ctx, grad_total, *_):
        saved = iter(ctx.saved_tensors)
        grad_z, grad_g, grad_w, grad_step = (next(saved) * grad_total if present else None
                                             for present in ctx.present)
        return (None, grad_z, None, grad_g, grad_w, grad_step) + (None,) * 8


def _wants(*tensors):
    """Which of these inputs need a gradient from an operation run now."""
    grad = torch.is_grad_enabled()
    return tuple(grad and torch.is_tensor(t) and t.requires_grad for t in tensors)


def token_weights(targets, pad_token_id):
    """Per-row weights of a token-mean loss that ignores padding: 1/count on real targets, 0 on pads."""
    real = (targets != pad_token_id)
    return real.to(torch.float64) / real.sum().clamp(min=1)  # exact 1/count; the step casts


def embed_probabilities(z, weight, vocab_first, rows, lse=None):
    """(e, p, lse) for logits z (N, V): e = softmax(z) @ M (N, D), p = softmax(z) as a plain buffer
    (`think_step_loss` overwrites it with the next state), lse = logsumexp(z) (given when known)."""
    if lse is None:
        with torch.no_grad():
            lse = row_logsumexp(z, rows)
    e, probs = _EmbedProbabilities.apply(z, lse, weight, vocab_first, rows)
    return e, probs, lse


def think_step_loss(g, weight, vocab_first, step, targets, row_weights, rows, *, probs=None, z=None, lse_z=None,
                    normalize=True, smoothing=0.0):
    """(loss, next state z' (N, V), logsumexp(z')) of one thinking step, see the module docstring.

    With normalize: probs = softmax(z) from `embed_probabilities` (overwritten by z'), z and lse_z for
    the gradient into z when z has one (learnable Langevin noise). Without: z' = z - step * G @ M^T.
    row_weights: per-row loss weights (`token_weights`); smoothing: label smoothing of the targets.
    """
    loss, state, lse = _ThinkStepLoss.apply(probs if normalize else None, z, lse_z if normalize else None, g, weight,
                                            step, targets, row_weights, float(smoothing), vocab_first, rows,
                                            normalize, True, _wants(z, g, weight, step))
    return loss, state, lse


def linear_cross_entropy(hidden, weight, targets, pad_token_id, rows):
    """Mean cross-entropy of hidden @ weight^T against targets, ignoring pads, without the (N, V) logits.

    hidden (N, D), weight (V, D) (an nn.Linear(D, V) weight), targets (N,)."""
    loss, _ = _ThinkStepLoss.apply(None, None, None, hidden, weight, -1.0, targets,
                                   token_weights(targets, pad_token_id), 0.0, True, rows, False, False,
                                   _wants(None, hidden, weight, None))
    return loss


# ----------------------------------------------------------------------------- the thinking loop over them

def fused_step_blocker(cfg):
    """Why the fused step cannot run the thinking `cfg` asks for (the current, autograd path runs), or None."""
    if cfg.no_mcmc_detach:
        return "--no_mcmc_detach differentiates through the states between steps, which the fused step keeps out"
    if cfg.clamp_futures_grad:
        return "--clamp_futures_grad clamps dE/dp, a (B, n, V) tensor the fused step never forms"
    if cfg.absolute_clamp:
        return "--absolute_clamp clamps the logits inside the step"
    return None


def think_over_vocabulary(embedded_energy, initial_logits, weight, vocab_first, targets, pad_token_id, *, step_size,
                          landscapes, create_graph, truncate, langevin_std, normalize, soften, rows,
                          evaluate_final_energy, detach_between_steps=True, grad_clamp=None, state_clamp=None):
    """`model.thinking.think` for the language EBT with each step's loss fused into the step.

    embedded_energy(e (B, n, D), landscape) -> (B, n); initial_logits (B, n, V); targets (B, n);
    weight/vocab_first: the prediction embedding M (see `_vocab_by_dim`). The keyword arguments are those
    of `EnergyMinimizer.thinking_plan` (the plans `fused_step_blocker` lets through) plus normalize (softmax
    the state before embedding it), soften (label smoothing of the first step, falling to 0 at the last)
    and rows (chunk size). Returns a ThinkingResult with `losses`: the token-mean cross-entropy after each
    step, smoothed as configured (what `EBT_NLP.step_loss` computes from the states).
    """
    from model.thinking import ThinkingResult, _at_step  # model.thinking imports nothing from here

    assert detach_between_steps and grad_clamp is None and state_clamp is None, "see fused_step_blocker"
    B, n, V = initial_logits.shape
    N, T = B * n, len(landscapes)
    flat_targets = targets.reshape(N)
    row_weights = token_weights(flat_targets, pad_token_id)
    result = ThinkingResult()
    z, lse = initial_logits.reshape(N, V).detach(), None
    for i, landscape in enumerate(landscapes):
        # steps outside the objective (evaluation; all but the last with truncate_mcmc) build no graph
        learn = create_graph and (not truncate or i == T - 1)
        with torch.set_grad_enabled(learn):
            noise_std = _at_step(langevin_std, i)
            if noise_std is not None:
                z, lse = z + torch.randn_like(z) * noise_std, None
            if normalize:
                e, probs, lse = embed_probabilities(z, weight, vocab_first, rows, lse)
            else:
                e, probs = _mm(z, _vocab_by_dim(weight, vocab_first), _compute_dtype(z)), None
        if not learn or not e.requires_grad:
            e = e.detach().requires_grad_()
        with torch.enable_grad():  # dE/de is wanted even under validation's no_grad
            energy = embedded_energy(e.view(B, n, -1), landscape)
            # retain: later steps may still need graph shared with this one (the observed stream)
            (g,) = torch.autograd.grad(energy.sum(), e, create_graph=learn, retain_graph=create_graph)
        step = _at_step(step_size, i)
        if torch.is_tensor(step) and step.dim() > 0:
            step = step.expand(B, n, 1).reshape(N, 1)
        smoothing = (T - 1 - i) / (T - 1) * soften if soften and T > 1 else 0.0
        with torch.set_grad_enabled(learn):
            loss, z, lse = think_step_loss(g, weight, vocab_first, step, flat_targets, row_weights, rows, probs=probs,
                                           z=z, lse_z=lse, normalize=normalize, smoothing=smoothing)
        result.states.append(z.view(B, n, V))
        result.energies.append(energy if learn else energy.detach())
        result.losses.append(loss)
    if evaluate_final_energy:
        with torch.no_grad():
            e = (embed_probabilities(z, weight, vocab_first, rows, lse)[0] if normalize
                 else _mm(z, _vocab_by_dim(weight, vocab_first), _compute_dtype(z)))
            result.final_energy = embedded_energy(e.view(B, n, -1), landscapes[-1])
    return result


def describe_vocab_path(cfg, thinks, device):
    """The start-up line saying how the model's vocabulary-side loss runs, and why."""
    if cfg.fused_vocab_loss == "off":
        return "vocabulary loss: plain autograd (--fused_vocab_loss off)"
    blocker = fused_step_blocker(cfg) if thinks else None
    if blocker:
        return f"vocabulary loss: plain autograd, because {blocker}"
    what = "thinking step + cross-entropy" if thinks else "head + cross-entropy"
    rows = chunk_rows(cfg.vocab_size, cfg.vocab_chunk_mb, device)
    return f"vocabulary loss: fused {what} in chunks of {rows} rows x {cfg.vocab_size} tokens (--vocab_chunk_mb)"
