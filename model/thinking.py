"""The one energy-minimisation loop ("thinking") shared by every EBT.

A modality supplies `energy_fn(prediction, landscape) -> energies (B, n)` (one scalar per predicted
position, or (B,) for whole-sample energies) and an initial state; the loop walks down the energy:

    state_0 = initial guess
    for each step i, on energy landscape k(i):
        prediction = normalize(state_i)                 # NLP: softmax(logits); others: identity
        E = energy_fn(prediction, k(i))
        state_{i+1} = prediction - step_size * dE/dprediction

With `normalize = softmax` this is the published NLP rule (spec 2.6): the gradient is taken with
respect to the *probabilities* and `p - alpha * dE/dp` becomes the next logits. That is the method as
published, not a bug.

Training differentiates the loss through dE/dprediction (create_graph=True): a second-order graph.
Evaluation passes create_graph=False so no such graph is built.
"""
from dataclasses import dataclass, field

import torch


@dataclass
class ThinkingResult:
    """States after each step (what the loss sees) and the energy evaluated before each update."""
    states: list = field(default_factory=list)  # each like the initial state, e.g. (B, n, V) logits
    energies: list = field(default_factory=list)  # each (B, n): energy of the prediction the step started from
    final_energy: object = None  # (B, n) energy of the final prediction, when asked for


def landscape_schedule(num_landscapes, randomize_num_steps=0, min_num_steps=0, final_landscape_only=False,
                       training=False):
    """Energy-landscape index of every step (spec 2.6 step 5).

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


def think(energy_fn, initial_state, step_size, landscapes, *, create_graph, normalize=None,
          detach_between_steps=True, truncate=False, langevin_std=None, grad_clamp=None, state_clamp=None,
          accept_lower_energies=False, evaluate_final_energy=False):
    """Run gradient descent on the energy from `initial_state`, one step per entry of `landscapes`.

    step_size: scalar tensor or a tensor broadcastable to the state (e.g. (B, n, 1) per position), or a
    list with one such value per step (as is langevin_std, where None means no noise at that step).
    detach_between_steps: cut the graph between steps (published default); the loss at step i then
    backpropagates through step i's energy gradient only. False (System 2's no_mcmc_detach) keeps it.
    truncate: build the second-order graph on the last step only (System 2's truncate_mcmc).
    langevin_std: Langevin noise added to the state before every step (System 2).
    grad_clamp / state_clamp: clamp the energy gradient / the new state to +-value.
    accept_lower_energies: keep a step's proposal only where it lowers the energy (test time, spec 4.2).
    evaluate_final_energy: also evaluate (without graph) the energy of the final prediction on the last
    landscape, to see whether thinking lowered it; one extra forward.
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
                energy = energy_fn(prediction, landscape)
                second_order = create_graph and (not truncate or i == len(landscapes) - 1)
                # retain: later steps and the loss may still need graph shared with this one (observed stream)
                (grad,) = torch.autograd.grad(energy.sum(), prediction, create_graph=second_order,
                                              retain_graph=create_graph)
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
