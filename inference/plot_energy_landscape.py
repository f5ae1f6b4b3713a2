"""Pictures of a trained EBT's thinking (inference/energy_landscape.py), for text, image-denoising or video checkpoints.

Takes the first --rows rows of the checkpoint's test split, thinks about them with the trained schedule (System 1)
and, with --system2_steps, also with more steps per landscape (System 2: --system2_alpha, --system2_noise), and
writes one PNG: the energy (and loss) per thinking step, and the energy on a 2-D slice of the prediction space
through one row's path (spanned by its first step and the direction to the answer). The numbers go to stdout.

    python inference/plot_energy_landscape.py --checkpoint logs/quickstart/<time>/checkpoints/last.ckpt
    python inference/plot_energy_landscape.py --checkpoint CKPT --system2_steps 3 --out landscape.png
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch, the data and the models are imported where they are used, after the arguments are checked
from utils.usage import (Parser, UsageError, check, input_path_problem, output_path_problem,  # noqa: E402
                         run_entry_point, whole_number)


def parse(argv):
    p = Parser(prog="plot_energy_landscape.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a training checkpoint of an EBT")
    p.add_argument("--out", default=None, help="the PNG to write (default: energy_landscape.png beside the checkpoint's "
                                               "run folder)")
    p.add_argument("--rows", type=whole_number(1), default=8, help="test rows (texts, images, clips) to think about")
    p.add_argument("--row", type=whole_number(0), default=0, help="the row whose slice is drawn")
    p.add_argument("--grid", type=whole_number(3, 201), default=21, help="slice resolution per side")
    p.add_argument("--system2_steps", type=whole_number(1), default=None,
                   help="also think with this many steps per landscape (System 2, --infer_ebt_num_steps)")
    p.add_argument("--system2_alpha", type=float, default=0.0, help="System 2 step size (as --infer_ebt_override_alpha)")
    p.add_argument("--system2_noise", type=float, default=0.0, help="System 2 Langevin noise std")
    p.add_argument("--seed", type=whole_number(0), default=0)
    args = p.parse_args(argv)
    check(input_path_problem("--checkpoint", args.checkpoint),
          None if args.row < args.rows else f"--row {args.row} must be below --rows {args.rows}",
          None if args.system2_alpha >= 0 else "--system2_alpha must be >= 0",
          None if args.system2_noise >= 0 else "--system2_noise is a standard deviation: use a value >= 0")
    if args.out is None:
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
        args.out = os.path.join(run_dir, "energy_landscape.png")
    check(output_path_problem("--out", args.out, file=True))
    return args


def first_test_rows(model, hp, rows):
    """A collated batch of the first `rows` rows of the checkpoint's test split."""
    from argparse import Namespace

    from tasks import task_class

    task = task_class(hp)(Namespace(**hp))
    test = task.splits(model, "test")[2]
    if len(test) == 0:
        raise UsageError(f"the test split of {hp['dataset_name']} is empty")
    return task.collate()([test[i] for i in range(min(rows, len(test)))])


def main(argv=None):
    args = parse(argv)
    import torch

    from inference.energy_landscape import landscape_report, plot_report
    from model.config import InferenceConfig
    from model.registry import load_trained_model

    try:
        model, hp = load_trained_model(args.checkpoint)
    except ValueError as error:
        raise UsageError(f"--checkpoint {error}") from error
    if not hasattr(model, "thinking_problem"):
        raise UsageError(f"--checkpoint {args.checkpoint} is a --model_name {hp['model_name']} checkpoint of "
                         f"{hp['modality']}{' ' + hp['image_task'] if hp.get('image_task') else ''}: pictures of thinking "
                         "exist for the text, image-denoising and video EBTs")
    torch.manual_seed(args.seed)
    batch = first_test_rows(model, hp, args.rows)
    check(None if args.row < next(iter(batch.values())).shape[0] else
          f"--row {args.row}: the test split has only {next(iter(batch.values())).shape[0]} rows")
    system2 = None
    if args.system2_steps is not None:
        system2 = InferenceConfig.from_hparams(hp, infer_ebt_num_steps=args.system2_steps,
                                               infer_ebt_override_alpha=args.system2_alpha,
                                               infer_langevin_dynamics_noise=args.system2_noise)
    report = landscape_report(model, batch, system2, row=args.row, grid=args.grid)
    print_report(report)
    plot_report(report, args.out, title=f"{hp['model_name']}-{hp['model_size']} on {hp['dataset_name']}")
    print(f"picture: {args.out}")
    return 0


def print_report(report):
    from inference.energy_landscape import _per_step

    for name, traj in (("System 1", report.system1), ("System 2", report.system2)):
        if traj is None:
            continue
        energies, losses = _per_step(traj.energies)[0], _per_step(traj.losses)[0]
        print(f"{name}: energy per step {' -> '.join(f'{e:.4f}' for e in energies)}; "
              f"loss after each step {' -> '.join(f'{v:.4f}' for v in losses)}")
    s = report.slice
    print(f"slice of row {s.row}: energy {float(s.energy.min()):.4f} .. {float(s.energy.max()):.4f} on a "
          f"{s.energy.shape[0]}x{s.energy.shape[1]} grid; the path ends at {s.path[-1].tolist()}, "
          f"the answer is at {s.target.tolist()}")


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
