"""The vocabulary side of a language model's step, fused and computed in row chunks.

One thinking step of the language EBT over V tokens (docs/method.md, model/thinking.py) is

    p  = softmax(z)               (z itself without normalize_initial_condition)       (N, V)
    e  = p @ M                    M (V, D): tied embeddings, or vocab_to_embed's weight    (N, D)
    G  = dE/de                    through the trunk, with the second-order graph          (N, D)
    z' = p - alpha * G @ M^T      the next logits (dE/dp = G @ M^T)                       (N, V)
    loss = cross_entropy(z', targets)

Autograd on these lines keeps p, dE/dp, z', log_softmax(z') and their gradients, a dozen (N, V) tensors
per step and as many passes over them, and differentiates into the detached state z for nothing. The
two operations here keep one (N, V) tensor per step and never form the others whole:

- `embed_probabilities(z, M)` -> (e, p): p is written over z (the state is not needed again) and saved
  for the backward, which gives dL/dM (and dL/dz only when z has a gradient: learnable Langevin noise);
- `think_step_loss(G, M, alpha, base=p)` -> (loss, z'): the loss is a leaf differentiated once, by a
  scalar, so its gradients (for G, M, alpha and p when needed) are computed in the forward pass, chunk by
  chunk while each chunk is in cache; the backward only scales them.

G = dE/de carries the second-order graph (taken with create_graph=True), so the trunk's second order is
autograd's; these operations themselves are only ever differentiated once. Within one step the two share a
`WeightGradHandoff`: the loss's weight gradient (computed in its forward) is not handed to autograd as a
second (V, D) gradient but added, scaled, into the embedding's backward, which always runs after it (e
feeds the loss through G), so the backward allocates one (V, D) buffer per step fewer. With base absent and alpha = -1
the second one is a plain chunked linear cross-entropy, `linear_cross_entropy(h, W)`: the Transformer++'s
head and loss.

Under autocast the matrix products run in the autocast dtype; the soft-max and loss math in float32 (or
float64, for gradient checks). The twin that tests compare against is the autograd path of
`EBT_NLP.forward` + `EBT_NLP.step_loss` (tests/test_vocab_step.py).
"""
import threading

import torch

DEFAULT_CHUNK_MB = {"cpu": 64.0, "cuda": 1024.0}  # per chunked (rows, V) buffer; CPU: larger was no faster


def chunk_rows(vocab_size, chunk_mb, device):
    """Rows per chunk so that one (rows, V) float32 buffer takes about chunk_mb (device default if None)."""
    if chunk_mb is None:
        chunk_mb = DEFAULT_CHUNK_MB.get(torch.device(device).type, DEFAULT_CHUNK_MB["cuda"])
    return max(1, int(chunk_mb * 2**20 // (4 * vocab_size)))


_workspace = threading.local()


def _scratch(slot, rows, cols, device, dtype):
    """A reusable (rows, cols) buffer. On CPU freshly allocated large buffers cost a page fault per 4 KB on
    first touch (no caching allocator there), so the chunk buffers are kept per thread; CUDA's caching
    allocator already does this."""
    if torch.device(device).type == "cuda":
        return torch.empty(rows, cols, device=device, dtype=dtype)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    key = (slot, str(device), dtype)
    if key not in buffers or buffers[key].numel() < rows * cols:
        buffers[key] = torch.empty(rows * cols, device=device, dtype=dtype)
    return buffers[key][:rows * cols].view(rows, cols)


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


def _accumulate_mm(total, a, b, dtype):
    """total + a @ b (in place), or a @ b when total is None (no zero-filled accumulator)."""
    if total is None:
        if a.dtype == b.dtype == dtype:  # into an allocated output (on CPU a @ b measured slower, for (D, V) results)
            return torch.mm(a, b, out=a.new_empty(a.shape[0], b.shape[1]))
        return _mm(a, b, dtype)
    if total.dtype == a.dtype == b.dtype == dtype:
        return total.addmm_(a, b)
    return total.add_(a.to(dtype) @ b.to(dtype))


def _accumulate_weight_grad(total, vocab_side, dim_side, dtype):
    """total + vocab_side^T @ dim_side ((k, V) and (k, D) chunks): a prediction-embedding weight's gradient,
    always accumulated (V, D) (on CPU that product runs about 1.4x faster than the (D, V) one, more than
    paying for one transposed copy per step: `_in_weight_layout`)."""
    return _accumulate_mm(total, vocab_side.t(), dim_side, dtype)


def _in_weight_layout(grad, vocab_first):
    """A (V, D) gradient as the weight is stored: (V, D) (nn.Embedding), or (D, V) (nn.Linear(V, D)), a view
    that autograd copies into the parameter's layout."""
    return grad if vocab_first else grad.t()


def _vocab_by_dim(weight, vocab_first):
    """The (V, D) view of an embedding weight stored (V, D) (nn.Embedding) or (D, V) (nn.Linear(V, D))."""
    return weight if vocab_first else weight.t()


# Soft-max entries below e^-46 (1e-20) of their row's largest are raised to it. That moves no soft-max, loss
# or gradient by more than V * 1e-20 relative (below float32 rounding), and it keeps CPUs fast: exp of the
# large negative inputs that thinking's logits produce takes a slow path (20x), and tiny outputs scaled by
# the loss weights turn into subnormal numbers that slow every matrix product they enter by about 100x.
EXP_FLOOR = -46.0


def _row_exp_sums(buffer, z):
    """buffer = exp(z - max(z)) per row (buffer may be z itself); returns (max, sum), each (rows, 1):
    logsumexp(z) = max + log(sum)."""
    row_max = z.amax(-1, keepdim=True)
    shifted = z.sub_(row_max) if buffer is z else torch.sub(z, row_max, out=buffer)
    shifted.clamp_(min=EXP_FLOOR).exp_()
    return row_max, buffer.sum(-1, keepdim=True)


VOCAB_TILE = 1024  # CPU: columns per product in `_subtract_product_into` (about 1.25x faster than whole rows)


def _subtract_product_into(out, base, a, m, dtype):
    """out (k, V) = base - a @ M^T, base None meaning 0, the product computed in `dtype`. On CPU the product is
    taken in slices of VOCAB_TILE vocabulary columns, written in place: a slice of M then stays in cache
    while the whole (k, V) output is produced, which whole-row products with V ~ 50k do not manage."""
    if not out.dtype == a.dtype == m.dtype == dtype:
        product = a.to(dtype) @ m.t().to(dtype)
        torch.neg(product, out=out) if base is None else torch.sub(base, product, out=out)
        return
    tile = VOCAB_TILE if out.device.type == "cpu" else out.shape[1]
    for start in range(0, out.shape[1], tile):
        t = slice(start, start + tile)
        if base is None:
            torch.addmm(out[:, t], a, m[t].t(), beta=0, alpha=-1.0, out=out[:, t])
        else:
            torch.addmm(base[:, t], a, m[t].t(), alpha=-1.0, out=out[:, t])


class WeightGradHandoff:
    """The loss's weight gradient of one thinking step, passed to the same step's embedding backward.

    `think_step_loss` stores its (unscaled) weight gradient here instead of returning it; its backward scales
    it by d(objective)/d(loss) and marks it ready; `embed_probabilities`' backward (always later: e feeds the
    loss through G) accumulates p^T dL/de into it and returns the sum as the weight's gradient. A loss that
    is not differentiated leaves it unready, and the embedding's backward then ignores it."""

    def __init__(self):
        self.grad, self.ready = None, False

    def take(self):
        """The scaled gradient if the loss's backward ran, else None; releases it either way."""
        grad = self.grad if self.ready else None
        self.grad, self.ready = None, False
        return grad


def _next_state(out, base, g, step, m, dtype):
    """out = base - step * g @ M^T for a chunk of rows (the product in `dtype`), base None meaning 0;
    returns step * g. The forward's state and its recomputation both come from here, so they are equal."""
    gs = g.to(out.dtype) * step
    _subtract_product_into(out, base, gs, m, dtype)
    return gs


class PreviousStep:
    """What recomputes a state: state = softmax(base - step * g @ M^T), with base the previous step's soft-max
    (kept anyway: its own embedding's backward needs it), g its dE/de (N, D) and step its alpha (scalar or
    (N, 1)). Given to `embed_probabilities`, it saves these instead of the (N, V) soft-max."""

    def __init__(self, base, g, step):
        self.base, self.g = base, g.detach()
        self.step = step.detach() if torch.is_tensor(step) else step

    def step_for(self, rows):
        return self.step[rows] if torch.is_tensor(self.step) and self.step.dim() > 0 else self.step


def _softmax_backward(p, grad_p):
    """d loss / d z for p = softmax(z), given d loss / d p."""
    return p * (grad_p - (p * grad_p).sum(-1, keepdim=True))


class _EmbedProbabilities(torch.autograd.Function):
    """p = softmax(z), written over z, and e = p @ M, in row chunks. p is what the backward needs (the
    state z is not needed again): saved, or, given the `PreviousStep` that made z, recomputed chunk by chunk
    in the backward (one more product per step, one (N, V) tensor fewer held from forward to backward)."""

    @staticmethod
    def forward(ctx, z, weight, vocab_first, rows, handoff, previous):
        dtype = _compute_dtype(z)
        with torch.autocast(z.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            e = z.new_empty(z.shape[0], m.shape[1], dtype=dtype)
            for r in _chunks(z.shape[0], rows):
                p = z[r]
                _, total = _row_exp_sums(p, p)
                e[r] = p.div_(total).to(dtype) @ m
        ctx.mark_dirty(z)
        if not ctx.needs_input_grad[0]:  # p's gradient only matters to a state that has one
            ctx.mark_non_differentiable(z)
        if previous is None:
            ctx.save_for_backward(z, weight)
        else:  # z itself is let go after this step's loss
            ctx.save_for_backward(previous.base, weight)
            ctx.shape, ctx.state_dtype = z.shape, z.dtype
        ctx.vocab_first, ctx.rows, ctx.dtype, ctx.handoff, ctx.previous = vocab_first, rows, dtype, handoff, previous
        ctx.set_materialize_grads(False)  # no (N, V) zeros when p gets no gradient
        return e, z

    @staticmethod
    def backward(ctx, grad_e, grad_p):
        saved, weight = ctx.saved_tensors
        dtype, vocab_first, previous = ctx.dtype, ctx.vocab_first, ctx.previous
        ctx.previous = None
        grad_z = torch.empty_like(saved) if ctx.needs_input_grad[0] else None
        grad_w = ctx.handoff.take() if ctx.handoff is not None else None  # the step's loss's part, scaled
        N = saved.shape[0]
        if previous is not None:
            buffer = _scratch("state", min(ctx.rows, N), ctx.shape[1], saved.device, ctx.state_dtype)
        with torch.autocast(saved.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            for r in _chunks(N, ctx.rows):
                if previous is None:
                    pc = saved[r]
                else:  # the state as the previous step's loss made it, then its soft-max
                    pc = buffer[:r.stop - r.start]
                    _next_state(pc, saved[r], previous.g[r], previous.step_for(r), m, dtype)
                    pc.div_(_row_exp_sums(pc, pc)[1])
                h = grad_e[r].to(pc.dtype) if grad_e is not None else None
                if ctx.needs_input_grad[1] and h is not None:  # dL/dM = p^T h
                    grad_w = _accumulate_weight_grad(grad_w, pc, h, dtype)
                if grad_z is not None:  # learnable Langevin noise: the state itself has a gradient
                    dp = _mm(h, m.t(), dtype) if h is not None else torch.zeros_like(pc)
                    if grad_p is not None:
                        dp += grad_p[r]
                    grad_z[r] = _softmax_backward(pc, dp)
        grad_w = None if grad_w is None else _in_weight_layout(grad_w, vocab_first).to(weight.dtype)
        return grad_z, grad_w, None, None, None, None


class _ThinkStepLoss(torch.autograd.Function):
    """state = base - step * G @ M^T (a new buffer) and the weighted cross-entropy of `state` against the
    targets, chunk by chunk; see the module docstring. base: softmax(z), or z without normalisation.

    The loss is a leaf of the graph (differentiated once, by a scalar), so when gradients are wanted they
    are computed here, while each chunk is in cache; backward only scales them by d(total)/d(loss).
    """

    @staticmethod
    def forward(ctx, base, g, weight, step, targets, row_weights, smoothing, vocab_first, rows, keep_state, wants,
                handoff):
        need_base, need_g, need_w, need_step = wants
        dtype = _compute_dtype(g)
        N = g.shape[0]
        math_dtype = torch.promote_types(weight.dtype, torch.float32)
        per_row_step = torch.is_tensor(step) and step.dim() > 0
        with torch.autocast(g.device.type, enabled=False):
            m = _vocab_by_dim(weight, vocab_first).to(dtype)
            V = m.shape[0]
            state = torch.empty(N, V, device=g.device, dtype=math_dtype) if keep_state else None
            scratch = None if keep_state else _scratch("state", min(rows, N), V, g.device, math_dtype)
            exps = _scratch("exps", min(rows, N), V, g.device, math_dtype)
            row_loss = torch.empty(N, device=g.device, dtype=math_dtype)
            safe_targets = targets.clamp(0, V - 1).unsqueeze(-1)
            weights = row_weights.to(math_dtype).unsqueeze(-1)  # (N, 1)
            grad_base = torch.empty(N, V, device=g.device, dtype=math_dtype) if need_base else None
            grad_g = torch.empty(g.shape, device=g.device, dtype=math_dtype) if need_g else None
            grad_step = torch.empty(N, 1, device=g.device, dtype=math_dtype) if need_step else None
            grad_w = None
            for r in _chunks(N, rows):
                k = r.stop - r.start
                s = state[r] if keep_state else scratch[:k]
                g_r = g[r].to(math_dtype)
                step_r = step[r] if per_row_step else step
                gs = _next_state(s, None if base is None else base[r], g_r, step_r, m, dtype)
                row_max, total = _row_exp_sums(exps[:k], s)
                loss = row_max + total.log() - (1 - smoothing) * s.gather(1, safe_targets[r])
                if smoothing:
                    loss = loss - smoothing / V * s.sum(-1, keepdim=True)
                row_loss[r] = loss.squeeze(-1)
                if not any(wants):
                    continue
                # d loss / d state = w * (softmax - (1 - eps) onehot - eps / V)
                ds = exps[:k].mul_(weights[r] / total)
                ds.scatter_add_(1, safe_targets[r], -(1 - smoothing) * weights[r])
                if smoothing:
                    ds.sub_((smoothing / V) * weights[r])
                if need_g or need_step:
                    d_gs = _mm(ds, m, dtype).neg_()  # d loss / d (step * G)
                    if need_g:
                        grad_g[r] = d_gs * step_r
                    if need_step:
                        grad_step[r] = (g_r * d_gs).sum(-1, keepdim=True)
                if need_w:  # state = -(step G) M^T + ...: dL/dM^T = -(step G)^T ds
                    grad_w = _accumulate_weight_grad(grad_w, ds, -gs, dtype)
                if need_base:
                    grad_base[r] = ds
            total_loss = (row_loss * weights.squeeze(-1)).sum()
        if need_step and not per_row_step:
            grad_step = grad_step.sum().reshape(step.shape)
        # not inputs or outputs, so kept on ctx; backward scales them in place and lets them go
        grad_w = grad_w.to(weight.dtype) if need_w else None  # (V, D)
        if handoff is not None:  # the embedding's backward returns it (see WeightGradHandoff)
            handoff.grad, grad_w = grad_w, None
        elif grad_w is not None:
            grad_w = _in_weight_layout(grad_w, vocab_first)
        ctx.grads = [grad_base.to(base.dtype) if need_base else None, grad_g.to(g.dtype) if need_g else None,
                     grad_w, grad_step.to(step.dtype) if need_step else None]
        ctx.handoff = handoff
        ctx.set_materialize_grads(False)
        if not keep_state:
            return total_loss
        ctx.mark_non_differentiable(state)
        return total_loss, state

    @staticmethod
    def backward(ctx, grad_total, *_):
        if ctx.grads is None:
            raise RuntimeError("the fused thinking step's loss can be differentiated once (its gradients are "
                               "computed in the forward pass and handed over)")
        grads, ctx.grads = ctx.grads, None
        if grad_total is None:
            return (None,) * 12
        if ctx.handoff is not None and ctx.handoff.grad is not None:
            ctx.handoff.grad.mul_(grad_total)
            ctx.handoff.ready = True
        return tuple(t.mul_(grad_total) if t is not None else None for t in grads) + (None,) * 8


def _wants(*tensors):
    """Which of these inputs need a gradient from an operation run now."""
    grad = torch.is_grad_enabled()
    return tuple(grad and torch.is_tensor(t) and t.requires_grad for t in tensors)


def token_weights(targets, pad_token_id):
    """Per-row weights of a token-mean loss that ignores padding: 1/count on real targets, 0 on pads."""
    real = (targets != pad_token_id)
    return real.to(torch.float64) / real.sum().clamp(min=1)  # exact 1/count; the step casts


def embed_probabilities(z, weight, vocab_first, rows, handoff=None, previous=None):
    """(e, p) for logits z (N, V): p = softmax(z), computed in place over z's buffer (z is used up), and
    e = p @ M (N, D). Gradients flow to M and, when z has one, to z. handoff: the `WeightGradHandoff` this
    step's `think_step_loss` fills, whose part of M's gradient the backward returns with its own.
    previous: the `PreviousStep` whose loss made z (z without a gradient): p is recomputed from it in the
    backward instead of being saved."""
    assert previous is None or not z.requires_grad, "a recomputed state has no gradient of its own"
    return _EmbedProbabilities.apply(z, weight, vocab_first, rows, handoff, previous)


def think_step_loss(g, weight, vocab_first, step, targets, row_weights, rows, base, smoothing=0.0, handoff=None):
    """(loss, next state z' (N, V)) of one thinking step z' = base - step * G @ M^T, see the module docstring.

    base: p = softmax(z) from `embed_probabilities`, or z itself without normalisation (N, V);
    g = dE/de (N, D); step: alpha, a scalar or (N, 1) tensor; row_weights: per-row loss weights
    (`token_weights`); smoothing: label smoothing of the targets; handoff: the `WeightGradHandoff` given
    to the `embed_probabilities` that made `base` (M's gradient then leaves through that one's backward).
    """
    return _ThinkStepLoss.apply(base, g, weight, step, targets, row_weights, float(smoothing), vocab_first, rows,
                                True, _wants(base, g, weight, step), handoff)


def linear_cross_entropy(hidden, weight, targets, pad_token_id, rows):
    """Mean cross-entropy of hidden @ weight^T against targets, ignoring pads, without the (N, V) logits.

    hidden (N, D), weight (V, D) (an nn.Linear(D, V) weight), targets (N,)."""
    return _ThinkStepLoss.apply(None, hidden, weight, -1.0, targets, token_weights(targets, pad_token_id), 0.0, True,
                                rows, False, _wants(None, hidden, weight, None), None)


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
                          evaluate_final_energy, keep_states=False, final_state=True, detach_between_steps=True,
                          grad_clamp=None, state_clamp=None, recompute=False):
    """`model.thinking.think` for the language EBT with each step's loss fused into the step.

    embedded_energy(e (B, n, D), landscape) -> (B, n); initial_logits (B, n, V), used up (its buffer
    becomes the first soft-max); targets (B, n); weight/vocab_first: the prediction embedding M (see
    `_vocab_by_dim`). The keyword arguments are those of `EnergyMinimizer.thinking_plan` (the plans
    `fused_step_blocker` lets through) plus normalize (softmax the state before embedding it), soften
    (label smoothing of the first step, falling to 0 at the last) and rows (chunk size).

    Returns a ThinkingResult with `losses`, the token-mean cross-entropy after each step, smoothed as
    configured (what `EBT_NLP.step_loss` computes from the states), and `states`: the final logits only
    (each step's soft-max overwrites its state), or the logits after every step with keep_states; none with
    final_state=False (training without a replay buffer: a (B, n, V) buffer less at the forward's peak).
    """
    from model.thinking import ThinkingResult, _at_step, energy_and_gradient  # it imports nothing from here

    assert detach_between_steps and grad_clamp is None and state_clamp is None, "see fused_step_blocker"
    B, n, V = initial_logits.shape
    N, T = B * n, len(landscapes)
    flat_targets = targets.reshape(N)
    row_weights = token_weights(flat_targets, pad_token_id)
    m = _vocab_by_dim(weight, vocab_first)
    result = ThinkingResult()
    z = initial_logits.reshape(N, V).detach()
    previous = None  # how the last state was made, while it can be recomputed from kept tensors
    for i, landscape in enumerate(landscapes):
        # steps outside the objective (evaluation; all but the last with truncate_mcmc) build no graph
        learn = create_graph and (not truncate or i == T - 1)
        with torch.set_grad_enabled(learn):
            noise_std = _at_step(langevin_std, i)
            if noise_std is not None:
                z = z + torch.randn_like(z) * noise_std
                previous = None  # the noise is not kept
            handoff = WeightGradHandoff() if normalize and learn else None
            if normalize:
                # the last step's soft-max is recomputed in its backward; earlier ones are kept anyway, as
                # the base a later state is recomputed from
                remake = previous if i == T - 1 and learn and not z.requires_grad else None
                e, base = embed_probabilities(z, weight, vocab_first, rows, handoff, remake)
            else:
                e, base = _mm(z, m, _compute_dtype(z)), z
        if not learn or not e.requires_grad:
            e = e.detach().requires_grad_()
        with torch.enable_grad():  # dE/de is wanted even under validation's no_grad
            # retain: later steps may still need graph shared with this one (the observed stream)
            energy, g = energy_and_gradient(embedded_energy, e.view(B, n, -1), landscape, create_graph=learn,
                                            retain_graph=create_graph, recompute=recompute)
        g = g.reshape(N, -1)
        step = _at_step(step_size, i)
        if torch.is_tensor(step) and step.dim() > 0:
            step = step.expand(B, n, 1).reshape(N, 1)
        smoothing = (T - 1 - i) / (T - 1) * soften if soften and T > 1 else 0.0
        with torch.set_grad_enabled(learn):
            if i == T - 1 and not (final_state or keep_states or evaluate_final_energy):
                loss, z = _ThinkStepLoss.apply(base, g, weight, step, flat_targets, row_weights, float(smoothing),
                                               vocab_first, rows, False, _wants(base, g, weight, step), handoff), None
            else:
                loss, z = think_step_loss(g, weight, vocab_first, step, flat_targets, row_weights, rows, base,
                                          smoothing, handoff)
        # the state just made can be recomputed from a soft-max that its step's embedding saved
        previous = PreviousStep(base, g, step) if normalize and learn and not base.requires_grad else None
        if keep_states:  # the next step's soft-max will overwrite z
            result.states.append(z.view(B, n, V).clone() if normalize and i < T - 1 else z.view(B, n, V))
        result.energies.append(energy if learn else energy.detach())
        result.losses.append(loss)
    if z is not None and not keep_states:
        result.states.append(z.view(B, n, V))
    if evaluate_final_energy:
        with torch.no_grad():
            e = (embed_probabilities(z.clone(), weight, vocab_first, rows)[0] if normalize
                 else _mm(z, m, _compute_dtype(z)))
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
