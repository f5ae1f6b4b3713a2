"""The one energy-minimisation loop ("thinking") shared by every EBT.

A modality supplies `energy_fn(prediction, landscape) -> energies (B, n)` (one scalar per predicted
position, or (B,) for whole-sample energies) and an initial state; the loop walks down the energy:

    state_0 = initial guess
    for each step i, on energy landscape k(i):
        prediction = normalize(state_i)                 # NLP: softmax(logits); others: identity
        E = energy_fn(prediction, k(i))
        state_{i+1} = prediction - step_size * dE/dprediction

With `normalize = softmax` this is the published NLP rule (docs/method.md §2.3): the gradient is taken with
respect to the *probabilities* and `p - alpha * dE/dp` becomes the next logits. That is the method as
published, not a bug.

Training differentiates the loss through dE/dprediction (create_graph=True): a second-order graph.
Evaluation passes create_graph=False so no such graph is built.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from model.protocol import Model

PARALLEL_NOISE_MIN = 2**22  # CPU draws from this many numbers on are filled in parallel
NOISE_BLOCKS = 8  # fixed, so the numbers do not depend on the thread count
_noise_pool = {}  # pid -> thread pool (a forked process gets its own)


def standard_normal(shape, device, dtype):
    """N(0, 1) draws of `shape`, e.g. a random initial guess. torch's CPU sampler runs on one thread (over
    a tenth of a language EBT's step at a 50k vocabulary), so large CPU draws are split into NOISE_BLOCKS
    blocks, each from its own generator seeded from the global one, filled in parallel: deterministic
    under a seed, the same on any number of threads. Elsewhere (and small draws): torch.randn."""
    numel = math.prod(shape)
    if torch.device(device).type != "cpu" or numel < PARALLEL_NOISE_MIN or torch.get_num_threads() == 1:
        return torch.randn(shape, device=device, dtype=dtype)
    out = torch.empty(shape, device=device, dtype=dtype)
    flat, block = out.view(-1), -(-numel // NOISE_BLOCKS)
    seeds = torch.randint(2**62, (NOISE_BLOCKS,)).tolist()

    def fill(i):
        flat[i * block:(i + 1) * block].normal_(generator=torch.Generator().manual_seed(seeds[i]))

    pool = _noise_pool.get(os.getpid())
    if pool is None:
        pool = _noise_pool[os.getpid()] = ThreadPoolExecutor(torch.get_num_threads())
    list(pool.map(fill, range(NOISE_BLOCKS)))
    return out


@dataclass
class ThinkingResult:
    """States after each step (what the loss sees) and the energy evaluated before each update."""
    states: list = field(default_factory=list)  # each like the initial state, e.g. (B, n, V) logits
    energies: list = field(default_factory=list)  # each (B, n): energy of the prediction the step started from
    final_energy: object = None  # (B, n) energy of the final prediction, when asked for
    losses: list = field(default_factory=list)  # scalar loss after each step, from loops that compute it


@dataclass
class ThinkingProblem:
    """One batch's thinking, laid open for inspection (inference/energy_landscape.py): every piece of what the
    model's forward does with it, and the true answer in the space the model thinks in.

    energy_for(rows) -> E(prediction, landscape) for the observed inputs of batch rows `rows` (a LongTensor,
    repeats allowed), giving one energy per entry (B, n) or per image (B,); initial: the initial guesses;
    target: the answer as a state (one-hot-like logits for text); loss(state) -> the per-entry loss (B, n) or
    (B,); normalize: the map from state to prediction (softmax for text) or None; step_size_shape: as `minimize`.
    """
    energy_for: object
    initial: object
    target: object
    loss: object
    normalize: object = None
    step_size_shape: tuple = ()


def landscape_schedule(num_landscapes, randomize_num_steps=0, min_num_steps=0, final_landscape_only=False,
                       training=False):
    """Energy-landscape index of every step (docs/method.md §2.4).

    Without randomisation: one step per landscape, [0, 1, ..., L-1]. With randomize_num_steps = R > 0,
    training repeats each landscape k ~ U{max(min_num_steps, 1), ..., R+1} times (one draw per landscape,
    shared by the batch; only the last landscape with final_landscape_only) and evaluation repeats the
    last landscape R+1 times, the maximum.
    """
    if randomize_num_steps <= 0:
        return list(range(num_landscapes))
    last = num_landscapes - 1
    if not training:
        return list(range(last)) + [last] * (randomize_num_steps + 1)
    schedule = []
    for landscape in range(num_landscapes):
        repeats = 1
        if landscape == last or not final_landscape_only:
            repeats = int(torch.randint(max(min_num_steps, 1), randomize_num_steps + 2, ()))
        schedule += [landscape] * repeats
    return schedule


def _at_step(value, i):
    return value[i] if isinstance(value, (list, tuple)) else value


def _energy_and_gradient(energy_fn, prediction, landscape):
    """Energies and dE/dprediction through torch.func (traceable by torch.compile; first order only)."""
    def total(p):
        energy = energy_fn(p, landscape)
        return energy.sum(), energy
    grad, energy = torch.func.grad(total, has_aux=True)(prediction)
    return energy, grad


def energy_and_gradient(energy_fn, prediction, landscape, *, create_graph, retain_graph, recompute=False):
    """(E(prediction) (B, n), dE/dprediction), the second-order graph kept with create_graph.

    recompute (--activation_checkpointing; second-order steps only): of this computation only its inputs and
    outputs are kept until the backward pass, which recomputes it (non-reentrant torch.utils.checkpoint,
    under which the function may take a gradient itself). The trunk's second-order graph of every step then
    never lives at once, only one step's during the backward. Whatever the energy keeps across steps (the
    observed stream, `energy_fn.observe(landscape)`) is computed before, outside the recomputed region.
    """
    def energy_and_grad(p):
        energy = energy_fn(p, landscape)
        (grad,) = torch.autograd.grad(energy.sum(), p, create_graph=create_graph, retain_graph=retain_graph)
        return energy, grad

    if not (recompute and create_graph):
        return energy_and_grad(prediction)
    observe = getattr(energy_fn, "observe", None)
    if observe is not None:
        observe(landscape)
    return checkpoint(energy_and_grad, prediction, use_reentrant=False)


def think(energy_fn, initial_state, step_size, landscapes, *, create_graph, normalize=None,
          detach_between_steps=True, truncate=False, langevin_std=None, grad_clamp=None, state_clamp=None,
          accept_lower_energies=False, evaluate_final_energy=False, recompute=False):
    """Run gradient descent on the energy from `initial_state`, one step per entry of `landscapes`.

    step_size: scalar tensor or a tensor broadcastable to the state (e.g. (B, n, 1) per position), or a
    list with one such value per step (as is langevin_std, where None means no noise at that step).
    detach_between_steps: cut the graph between steps (published default); the loss at step i then
    backpropagates through step i's energy gradient only. False (System 2's no_mcmc_detach) keeps it.
    truncate: build the second-order graph on the last step only (System 2's truncate_mcmc).
    langevin_std: Langevin noise added to the state before every step (System 2).
    grad_clamp / state_clamp: clamp the energy gradient / the new state to +-value.
    accept_lower_energies: keep a step's proposal only where it lowers the energy (test time, docs/method.md §5.3).
    evaluate_final_energy: also evaluate (without graph) the energy of the final prediction on the last
    landscape, to see whether thinking lowered it; one extra forward.
    recompute: recompute each second-order step's energy gradient in the backward pass (`energy_and_gradient`).
    """
    result = ThinkingResult()
    state = initial_state
    # torch.compile cannot trace autograd.grad: compiled first-order thinking uses torch.func instead
    functional = torch.compiler.is_compiling() and not create_graph
    with torch.enable_grad():  # thinking needs input gradients even under validation's no_grad
        for i, landscape in enumerate(landscapes):
            if functional:
                state = state.detach()
            elif detach_between_steps or not state.requires_grad:
                state = state.detach().requires_grad_()
            start = state
            noise_std = _at_step(langevin_std, i)
            if noise_std is not None:
                state = state + torch.randn_like(state) * noise_std
            prediction = normalize(state) if normalize is not None else state
            if functional:
                energy, grad = _energy_and_gradient(energy_fn, prediction, landscape)
            else:
                second_order = create_graph and (not truncate or i == len(landscapes) - 1)
                # retain: later steps and the loss may still need graph shared with this one (observed stream)
                energy, grad = energy_and_gradient(energy_fn, prediction, landscape, create_graph=second_order,
                                                   retain_graph=create_graph, recompute=recompute)
            if grad_clamp is not None:
                grad = grad.clamp(-grad_clamp, grad_clamp)
            state = prediction - _at_step(step_size, i) * grad
            if state_clamp is not None:
                state = state.clamp(-state_clamp, state_clamp)
            if accept_lower_energies:
                with torch.no_grad():
                    proposal = normalize(state) if normalize is not None else state
                    lower = energy_fn(proposal, landscape) < energy  # (B, n) or (B,)
                state = torch.where(lower.view(*lower.shape, *[1] * (state.dim() - lower.dim())), state, start)
            if not create_graph:  # evaluation: keep no graph alive across steps
                state, energy = state.detach(), energy.detach()
            result.energies.append(energy)
            result.states.append(state)
    if evaluate_final_energy:
        with torch.no_grad():
            final = result.states[-1].detach()
            result.final_energy = energy_fn(normalize(final) if normalize is not None else final, landscapes[-1])
    return result


# ----------------------------------------------------------------------------- the parameters around the loop

MIN_STEP_SIZE = 1e-4  # alpha is clamped here so a learnable step size cannot go negative
MIN_LANGEVIN_STD = 1e-6


class EnergyMinimizer(Model):
    """What every EBT (text, image, video) keeps around its energy network: the step size alpha, the
    Langevin noise std, the System 2 switches of a ThinkingConfig, and the calls into `think`.

    A subclass supplies the energy function and the initial guess; `landscape_conditioned` says whether
    the network sees the landscape index (the text EBT's time_embed/adaln types), which decides what
    --infer_ebt_num_steps repeats (docs/method.md §5.1).
    """

    is_ebt = True
    landscape_conditioned = False

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.alpha = nn.Parameter(torch.tensor(float(cfg.mcmc_step_size)), requires_grad=cfg.mcmc_step_size_learnable)
        # learnable only after warm-up, if asked (docs/method.md §2.8)
        self.langevin_dynamics_noise_std = nn.Parameter(torch.tensor(float(cfg.langevin_dynamics_noise)),
                                                        requires_grad=False)
        self.grad_clamp_max_change = cfg.clamp_futures_grad_max_change

    def initial_state(self, rows, n, device, latest=None):
        """The initial guess of `rows` rows of n predictions, on `device`; `latest` holds the newest observed inputs
        at those positions (B rows, B dividing `rows`), for guesses that start from them. What `think_about`
        starts from: the autoregressive EBTs implement it."""
        raise NotImplementedError

    def normalizer(self):
        """The map applied to a state before each energy (the text EBT's softmax), or None."""
        return None

    def think_about(self, energy_fn, B, n, device, learning=False, final_energy=False, latest=None):
        """System 1 thinking over (B, n) predictions for any energy function over them (a batch's, or a KV
        cache's during generation), from `initial_state`; the step size is per (row, position) when randomised."""
        return self.minimize(energy_fn, self.initial_state(B, n, device, latest), (B, n, 1), learning, final_energy,
                             self.normalizer())

    def advanced_think_about(self, energy_for, B, n, device, icfg, latest=None):
        """System 2 thinking at test time over any energy function; energy_for(G) serves the B*G repeated rows."""
        return self.minimize_best_of(energy_for, lambda rows: self.initial_state(rows, n, device, latest), B, icfg,
                                     self.normalizer())

    def think_for_loss(self, observed, training, final_energy, inference):
        """(thinking result, whether it holds the final energy) for a batch: System 2 thinking at test time when
        `inference` (an InferenceConfig) is given, else the trained schedule (a second-order graph only when
        training). final_energy None: the energy after thinking outside training only."""
        if inference is not None:
            return self.advanced_inference(observed, inference), True
        final_energy = not training if final_energy is None else final_energy
        return self(observed, learning=training, final_energy=final_energy), final_energy

    def thinking_report(self, result, step_losses, final_energy, mean=torch.mean):
        """The loss and logs every EBT reports for a thinking result and its per-step losses (T,): the mean over
        the steps (the last step's alone with --truncate_mcmc), each step's loss and the mean energy it started
        from, the energy drop while thinking and, when asked, the energy after thinking. `mean` averages an
        energy tensor (text: over the non-pad targets)."""
        step_energies = torch.stack([mean(e.detach()) for e in result.energies])
        out = {
            "loss": step_losses[-1] if self.cfg.truncate_mcmc else step_losses.mean(),
            "initial_loss": step_losses[0].detach(),
            "final_step_loss": step_losses[-1].detach(),
            "initial_final_pred_energies_gap": step_energies[0] - step_energies[-1],
            "step_losses": step_losses.detach(),  # (T,) loss after each thinking step
            "step_energies": step_energies,  # (T,) mean energy each step started from
        }
        if final_energy:
            out["final_energy"] = mean(result.final_energy.detach())
        return out

    def num_evaluation_steps(self):
        """Thinking steps outside training (the maximum of a randomised schedule)."""
        c = self.cfg
        return len(landscape_schedule(c.mcmc_num_steps, c.randomize_mcmc_num_steps, training=False))

    def warm_up_finished(self):
        """Called once when the LR warm-up ends (docs/method.md §2.8)."""
        if self.cfg.clamp_max_after_warm_up:
            self.grad_clamp_max_change = self.cfg.clamp_max_after_warm_up
        if self.cfg.langevin_dynamics_noise_learnable:
            self.langevin_dynamics_noise_std.requires_grad_(True)

    def step_size(self, shape, randomize):
        """alpha, or alpha ~ U[alpha/s, alpha*s] per entry of `shape` (broadcast over the state) when
        training with randomize_mcmc_step_size_scale s != 1."""
        alpha = self.alpha.clamp(min=MIN_STEP_SIZE)
        s = self.cfg.randomize_mcmc_step_size_scale
        if not randomize or s == 1:
            return alpha
        u = torch.rand(shape, device=alpha.device, dtype=alpha.dtype)
        return alpha / s + u * (alpha * s - alpha / s)

    def thinking_plan(self, step_size_shape, learning=False):
        """The keyword arguments of `think` for System 1 thinking (System 2 training options included):
        step sizes, landscape schedule, noise, clamps. Random draws happen here, in a fixed order."""
        cfg = self.cfg
        langevin = None
        if cfg.langevin_dynamics_noise and (learning or not cfg.no_langevin_during_eval):
            langevin = self.langevin_dynamics_noise_std.clamp(min=MIN_LANGEVIN_STD)
        return dict(
            step_size=self.step_size(step_size_shape, randomize=learning),
            landscapes=landscape_schedule(cfg.mcmc_num_steps, cfg.randomize_mcmc_num_steps,
                                          cfg.randomize_mcmc_num_steps_min,
                                          cfg.randomize_mcmc_num_steps_final_landscape, training=learning),
            create_graph=learning,
            detach_between_steps=not cfg.no_mcmc_detach,
            truncate=cfg.truncate_mcmc,
            langevin_std=langevin,
            recompute=learning and getattr(cfg, "activation_checkpointing", False),
            **self.clamps(),
        )

    def clamps(self):
        """The trained gradient and state clamps, for System 1 and System 2 thinking alike (a model trained to
        keep its predictions in range keeps them there when it thinks longer)."""
        grad_clamp = None
        if self.cfg.clamp_futures_grad:  # published: relative to the unrandomised alpha
            grad_clamp = self.grad_clamp_max_change / self.alpha.clamp(min=MIN_STEP_SIZE)
        return dict(grad_clamp=grad_clamp, state_clamp=self.cfg.absolute_clamp or None)

    def minimize(self, energy_fn, initial_state, step_size_shape, learning=False, final_energy=False, normalize=None):
        """System 1 thinking (System 2 training options included) from `initial_state`."""
        return think(energy_fn, initial_state, normalize=normalize, evaluate_final_energy=final_energy,
                     **self.thinking_plan(step_size_shape, learning))

    # -------------------------------------------------------------------------- System 2 at test time

    def inference_plan(self, icfg):
        """(landscapes, step sizes, noise stds) per step for --infer_ebt_advanced (docs/method.md §5.1)."""
        cfg, trained = self.cfg, self.alpha.detach().clamp(min=MIN_STEP_SIZE)  # as System 1 uses it
        a = icfg.infer_ebt_override_alpha
        adjusted = trained * a if 0 < a < 1 else (torch.full_like(trained, a) if a >= 1 else trained)
        if not self.landscape_conditioned:  # no landscape index: just more steps
            steps = icfg.infer_ebt_num_steps if icfg.infer_ebt_num_steps > 1 else cfg.mcmc_num_steps
            landscapes, alphas = [0] * steps, [adjusted] * steps
        else:
            landscapes, alphas = [], []
            inner = icfg.infer_ebt_num_steps
            if inner == 1:  # as trained: the smallest random step count of an S2 model, else one
                inner = cfg.randomize_mcmc_num_steps_min or 1
            for k in range(cfg.mcmc_num_steps):
                final = k == cfg.mcmc_num_steps - 1
                alpha = trained if icfg.infer_alpha_final_landscape and not final else adjusted
                repeats = 1 if icfg.infer_steps_final_landscape and not final else inner
                landscapes += [k] * repeats
                alphas += [alpha] * repeats
        std = icfg.infer_langevin_dynamics_noise or float(self.langevin_dynamics_noise_std)
        noise = [torch.tensor(std) if std and (i == 0 or not icfg.infer_langevin_first_step) else None
                 for i in range(len(landscapes))]
        return landscapes, alphas, noise

    def num_inference_steps(self, icfg):
        return len(self.inference_plan(icfg)[0])

    def minimize_best_of(self, energy_for, initial_state_for, B, icfg, normalize=None):
        """Think longer, with noise, from G initial guesses per row; keep, per energy entry (a text
        position, or a whole image), the sample chosen by its energy (`min` = self-verification).

        energy_for(G) serves the B*G rows b0g0, b0g1, ...; initial_state_for(B*G) gives their guesses.
        Returns the ThinkingResult of the chosen samples.
        """
        G = icfg.infer_generated_samples
        landscapes, alphas, noise = self.inference_plan(icfg)
        initial = initial_state_for(B * G)
        result = think(energy_for(G), initial, alphas, landscapes, create_graph=False, normalize=normalize,
                       langevin_std=[s.to(initial.device) if s is not None else None for s in noise],
                       accept_lower_energies=icfg.infer_accept_lower_energies, evaluate_final_energy=True,
                       **self.clamps())
        rest = result.final_energy.shape[1:]  # (n,) per text position, () per image
        final, first = result.final_energy.view(B, G, *rest), result.energies[0].view(B, G, *rest)
        technique = icfg.infer_energy_sampling_technique
        choice = {"min": lambda: final.argmin(1), "max": lambda: final.argmax(1),
                  "max_gap": lambda: (first - final).argmax(1)}[technique]()  # (B, *rest)

        def chosen(t):  # (B*G, *rest, ...) -> (B, *rest, ...)
            t = t.view(B, G, *t.shape[1:])
            index = choice.view(B, 1, *rest, *[1] * (t.dim() - 2 - len(rest))).expand(B, 1, *t.shape[2:])
            return t.gather(1, index).squeeze(1)

        return type(result)(states=[chosen(s) for s in result.states], energies=[chosen(e) for e in result.energies],
                            final_energy=chosen(result.final_energy))
