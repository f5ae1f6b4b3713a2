"""Pictures of thinking: the energy along an EBT's thinking trajectory and on a 2-D slice of its prediction space.

For one batch (`model.thinking_problem(batch)`, docs/method.md §5.7):
- the trajectory: the energy each step starts from and the energy after the last step, mean and 10-90% spread over
  positions (text, video) or images, with the loss after each step; System 1 (the trained schedule) and, given an
  InferenceConfig, System 2 (its steps, step size and noise; one sample per row);
- a slice: the plane through the initial guess of one row spanned by its first step and by the direction to the
  true answer (made orthogonal to the first), the energy on a grid of it, and the thinking path projected on it.
  The energy of a row is its mean over positions, on the first step's landscape.
"""
from dataclasses import dataclass, field

import torch

from model.thinking import think


@dataclass
class Trajectory:
    energies: list  # per step, then after the last one: energies (B, n) or (B,)
    losses: list  # per step: the loss (B, n) or (B,) of the state after it
    states: list  # the initial state, then each step's


@dataclass
class Slice:
    a: torch.Tensor  # (G,) coordinates along the first step (unit length in state space)
    b: torch.Tensor  # (G,) along the direction to the answer, orthogonal to the first step
    energy: torch.Tensor  # (G, G): energy[j, i] at (a[i], b[j])
    path: torch.Tensor  # (steps + 1, 2) the trajectory's coordinates
    target: torch.Tensor  # (2,) the answer's coordinates
    row: int
    plane: object = None  # the Plane, to evaluate more points


@dataclass
class Plane:
    """The plane origin + a u + b v (u, v orthonormal) in one row's state space, on one landscape."""
    problem: object
    row: int
    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    dtype: torch.dtype
    landscape: int

    def energies(self, coefficients, chunk=64):
        """The row's energy (mean over its positions) at each (a, b) of `coefficients` (K, 2) -> (K,)."""
        coefficients = coefficients.to(self.origin.device, self.origin.dtype)
        shape = (-1, *[1] * self.origin.dim())
        out = []
        with torch.no_grad():
            for start in range(0, coefficients.shape[0], chunk):
                c = coefficients[start:start + chunk]
                states = (self.origin + c[:, 0].view(shape) * self.u + c[:, 1].view(shape) * self.v).to(self.dtype)
                predictions = self.problem.normalize(states) if self.problem.normalize is not None else states
                rows = torch.full((c.shape[0],), self.row, dtype=torch.long, device=self.origin.device)
                e = self.problem.energy_for(rows)(predictions, self.landscape)
                out.append(e.float().flatten(1).mean(1) if e.dim() > 1 else e.float())
        return torch.cat(out)


@dataclass
class LandscapeReport:
    system1: Trajectory
    system2: Trajectory = None
    slice: Slice = None
    notes: list = field(default_factory=list)


def trajectory(model, problem, inference=None):
    """Think about the problem without a training graph: System 1, or System 2 with `inference`."""
    B = problem.initial.shape[0]
    rows = torch.arange(B, device=problem.initial.device)
    if inference is None:
        plan = model.thinking_plan(problem.step_size_shape, learning=False)
    else:
        landscapes, alphas, noise = model.inference_plan(inference)
        device = problem.initial.device
        plan = dict(step_size=alphas, landscapes=landscapes, create_graph=False,
                    langevin_std=[s.to(device) if s is not None else None for s in noise],
                    accept_lower_energies=inference.infer_accept_lower_energies)
    result = think(problem.energy_for(rows), problem.initial, normalize=problem.normalize, evaluate_final_energy=True,
                   **plan)
    with torch.no_grad():
        losses = [problem.loss(s.detach()) for s in result.states]
    return Trajectory([e.detach() for e in result.energies] + [result.final_energy.detach()], losses,
                      [problem.initial.detach()] + [s.detach() for s in result.states])


def energy_slice(model, problem, states, row=0, grid=21, margin=0.25, chunk=64):
    """The energy of row `row` on the plane through its initial guess spanned by its first step and the
    direction to the answer; `states` as Trajectory.states."""
    origin, first = states[0][row].float(), states[1][row].float()
    u = first - origin
    v = problem.target[row].float() - origin
    if u.norm() == 0:  # no first step (e.g. a zero gradient): the answer's direction and any orthogonal one
        u = torch.randn_like(origin)
    u = u / u.norm()
    v = v - (v * u).sum() * u
    v = v / v.norm() if v.norm() > 0 else torch.zeros_like(v)

    def coordinates(x):
        d = x.float() - origin
        return torch.stack([(d * u).sum(), (d * v).sum()])

    path = torch.stack([coordinates(s[row]) for s in states])
    target = coordinates(problem.target[row])
    points = torch.cat([path, target[None]])
    low, high = points.min(0).values, points.max(0).values
    pad = (high - low).clamp(min=1e-3) * margin
    a = torch.linspace(float(low[0] - pad[0]), float(high[0] + pad[0]), grid)
    b = torch.linspace(float(low[1] - pad[1]), float(high[1] + pad[1]), grid)
    A, Bv = torch.meshgrid(a, b, indexing="xy")  # (G, G): A[j, i] = a[i], Bv[j, i] = b[j]
    plane = Plane(problem, row, origin, u, v, states[0].dtype,
                  model.thinking_plan(problem.step_size_shape, learning=False)["landscapes"][0])
    energy = plane.energies(torch.stack([A.flatten(), Bv.flatten()], 1), chunk).view(grid, grid)
    return Slice(a, b, energy.cpu(), path.cpu(), target.cpu(), row, plane)


def landscape_report(model, batch, inference=None, row=0, grid=21):
    """Trajectories (System 1, and System 2 with `inference`) and the slice of one batch."""
    was_training = model.training
    model.eval()
    try:
        problem = model.thinking_problem(batch)
        system1 = trajectory(model, problem)
        system2 = trajectory(model, problem, inference) if inference is not None else None
        return LandscapeReport(system1, system2, energy_slice(model, problem, system1.states, row, grid))
    finally:
        model.train(was_training)


def _per_step(values):
    """Mean and 10%/90% quantiles over everything but the step: lists of (B, ...) -> three (steps,) arrays."""
    flat = [v.float().flatten().cpu() for v in values]
    return ([float(f.mean()) for f in flat], [float(f.quantile(0.1)) for f in flat],
            [float(f.quantile(0.9)) for f in flat])


def plot_report(report, path, title=""):
    """Two panels: energy (and loss) per thinking step; the energy slice with the path. Returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    loss_axis = left.twinx()
    for name, traj, colour in (("System 1", report.system1, "C0"), ("System 2", report.system2, "C1")):
        if traj is None:
            continue
        mean, low, high = _per_step(traj.energies)
        steps = range(len(mean))
        left.plot(steps, mean, "-o", color=colour, label=f"{name} energy")
        left.fill_between(steps, low, high, color=colour, alpha=0.15)
        loss_mean = _per_step(traj.losses)[0]
        loss_axis.plot(range(1, len(loss_mean) + 1), loss_mean, "--s", color=colour, alpha=0.7,
                       label=f"{name} loss")
    loss_axis.ticklabel_format(axis="y", useOffset=False)
    left.set_xlabel("thinking step (0: the initial guess)")
    left.set_ylabel("energy (mean, 10-90% band)")
    loss_axis.set_ylabel("loss after the step")
    handles = left.get_legend_handles_labels()[0] + loss_axis.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper right")
    left.set_title("energy along the trajectory")

    s = report.slice
    contour = right.contourf(s.a.numpy(), s.b.numpy(), s.energy.numpy(), levels=20, cmap="viridis")
    fig.colorbar(contour, ax=right, label="energy")
    right.plot(s.path[:, 0], s.path[:, 1], "-o", color="white", markersize=4, label="thinking path")
    right.plot(*s.path[0], "o", color="red", label="initial guess")
    right.plot(*s.target, "*", color="gold", markersize=14, label="answer")
    right.set_xlabel("along the first step")
    right.set_ylabel("towards the answer")
    right.set_title(f"energy slice (row {s.row})")
    right.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
