"""Is thinking doing anything at this scale? Two small sweeps over the published recipe space.

video: the toy video EBT (job_scripts/vid/pretrain/ebt_tiny_cpu.sh) first matched "repeat the last frame". Each
  setting changes one knob of that first recipe (alpha 3000, no clamp; the script now holds the sweep's finding):
  step size alpha and its learning rate, initial condition, thinking steps, energy-gradient or prediction clamp,
  learning rate. It trains for --video_steps and is scored by its final teacher-forced validation SmoothL1
  against that of copying the last real frame on the same clips.
quickstart: the quickstart EBT (job_scripts/quickstart.sh) gains 0.0004 nats from its second thinking step. Each
  setting changes the step size or the step count, trains the quickstart's 1000 steps, and is scored by the
  validation loss after each thinking step.

Writes <out>/<sweep>.{json,png} and <out>/thinking_sweep.json (every sweep run so far); the runs go to
<out>/runs.

    python experiments/thinking_sweep.py                 # both sweeps: ~35 min on 2 cores
    python experiments/thinking_sweep.py --sweeps video  # one of them
    python experiments/thinking_sweep.py --smoke         # seconds
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the models are imported where they are used, after the arguments are checked
from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point, whole_number  # noqa: E402

VIDEO = {
    "first recipe (alpha 3000 learnable x3, 2 steps, copy init)": [],
    "alpha 300": ["--mcmc_step_size", "300"],
    "alpha 30": ["--mcmc_step_size", "30"],
    "alpha 3": ["--mcmc_step_size", "3"],
    "alpha 1": ["--mcmc_step_size", "1"],
    "alpha 0.3": ["--mcmc_step_size", "0.3"],
    "alpha fixed": ["--no-mcmc_step_size_learnable"],
    "alpha learning rate x300": ["--mcmc_step_size_lr_multiplier", "300"],
    "random-noise init (published)": ["--denoising_initial_condition", "random_noise"],
    "1 thinking step": ["--mcmc_num_steps", "1"],
    "4 thinking steps": ["--mcmc_num_steps", "4"],
    "clamped energy gradient": ["--clamp_futures_grad"],
    "learning rate 0.003": ["--peak_learning_rate", "0.003"],
    "alpha 3, 4 thinking steps": ["--mcmc_step_size", "3", "--mcmc_num_steps", "4"],
    "alpha 3, learning rate 0.003": ["--mcmc_step_size", "3", "--peak_learning_rate", "0.003"],
    "alpha 3, predictions clamped to [-1, 1] (the recipe now)": ["--mcmc_step_size", "3", "--absolute_clamp", "1"],
    "alpha 1, predictions clamped to [-1, 1]": ["--mcmc_step_size", "1", "--absolute_clamp", "1"],
}
QUICKSTART = {
    "recipe (alpha 500 learnable, 2 steps)": [],
    "alpha 50": ["--mcmc_step_size", "50"],
    "alpha 5000": ["--mcmc_step_size", "5000"],
    "3 thinking steps": ["--mcmc_num_steps", "3"],
}
# recipe, flags that turn it into the sweep's starting point (the video recipe has since taken the sweep's
# finding), settings
SWEEPS = {"video": ("job_scripts/vid/pretrain/ebt_tiny_cpu.sh", ["--mcmc_step_size", "3000", "--absolute_clamp", "0"],
                    VIDEO),
          "quickstart": ("job_scripts/quickstart.sh", [], QUICKSTART)}
SMOKE = {"video": ["--max_steps", "2", "--warm_up_steps", "1", "--val_check_interval", "2", "--limit_val_batches",
                   "2", "--override_embedding_dim", "32", "--batch_size_per_device", "2", "--pixel_pooling", "8"],
         "quickstart": ["--max_steps", "2", "--warm_up_steps", "1", "--val_check_interval", "2",
                        "--limit_val_batches", "2", "--override_embedding_dim", "32"]}
CLEAR_WIN = 0.9  # video: "beats copying clearly" below this fraction of the copying loss
MATTERS = 0.01  # quickstart: nats the second step must gain to "matter"


def slug(label):
    return "".join(c if c.isalnum() else "_" for c in label.split(" (")[0].lower()).strip("_")


def last_validation(run_dir):
    """The last validation's loss and its loss after each thinking step {step: loss}."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        row = [r for r in csv.DictReader(f) if r.get("valid_loss")][-1]
    steps = {int(k.rsplit("_", 1)[1]): float(v) for k, v in row.items() if k.startswith("valid_loss_step_") and v}
    return float(row["valid_loss"]), dict(sorted(steps.items()))


def copy_last_frame_validation_loss(checkpoint_path, batches):
    """Teacher-forced SmoothL1 of predicting each next frame as the current one, on a run's validation clips (the
    first `batches` batches, as its validation read them)."""
    import torch
    from torch.utils.data import DataLoader

    from model.registry import load_trained_model
    from model.vid.common import frame_features, inputs_and_targets, next_frame_loss
    from tasks import task_class

    model, hp = load_trained_model(checkpoint_path)
    validation = task_class(hp)(argparse.Namespace(**hp)).splits(model, "fit")[1]
    losses = []
    for i, batch in enumerate(DataLoader(validation, batch_size=hp["batch_size_per_device"])):
        if i == batches:
            break
        with torch.no_grad():
            inputs, targets = inputs_and_targets(frame_features(batch, model.encoders))
            losses.append(float(next_frame_loss(inputs, targets)))
    return sum(losses) / len(losses)


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/thinking_sweep")
    parser.add_argument("--sweeps", nargs="+", choices=list(SWEEPS), default=list(SWEEPS))
    parser.add_argument("--video_steps", type=whole_number(1), default=None,
                        help="training steps of each video setting (default 600; the recipe trains 2000)")
    add_training_arguments(parser, seeds=[33], reuse_runs=True)
    parser.add_argument("--smoke", action="store_true", help="2 training steps of tiny models, 2 settings each")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir),
          None if len(args.seeds) == 1 else "a sweep trains each setting once: give one seed (--seeds N)",
          None if args.video_steps is None or "video" in args.sweeps else
          "--video_steps sets the video sweep's length; add video to --sweeps or leave it out",
          None if not (args.smoke and args.video_steps) else "--smoke trains 2 steps: leave --video_steps out")
    video_steps = args.video_steps or 600
    log_dir = os.path.join(args.out_dir, "runs")
    out = {}
    for sweep in args.sweeps:
        recipe, base, settings = SWEEPS[sweep]
        if args.smoke:
            settings = dict(list(settings.items())[:2])
        length = (SMOKE[sweep] if args.smoke else
                  ["--max_steps", str(video_steps), "--val_check_interval", str(video_steps)]
                  if sweep == "video" else [])
        names = {label: f"{sweep}_{slug(label)}" for label in settings}
        commands = {names[label]: ["bash", recipe, *base, *flags, *length, "--run_name", names[label], "--log_dir", log_dir,
                                   "--seed", str(args.seeds[0])]
                    for label, flags in settings.items()}
        run_commands(commands, os.path.join(args.out_dir, "logs"), args.jobs,
                     reuse_finished_in=args.reuse_runs and log_dir)
        rows = []
        for label, flags in settings.items():
            run_dir = newest_run(log_dir, names[label])
            loss, steps = last_validation(run_dir)
            row = {"setting": label, "flags": " ".join(flags), "valid_loss": loss, "step_losses": steps}
            if sweep == "video":
                row["copy_loss"] = copy_last_frame_validation_loss(
                    os.path.join(run_dir, "checkpoints", "last.ckpt"), 2 if args.smoke else 16)
                row["versus_copy"] = loss / row["copy_loss"]
            else:
                row["second_step_gain"] = steps[1] - steps[2] if 2 in steps else None
            rows.append(row)
            print(f"{sweep}: {label}: {row}", flush=True)
        command = (f"python experiments/thinking_sweep.py --sweeps {sweep}" + (" --smoke" if args.smoke else "")
                   + (f" --video_steps {video_steps}" if sweep == "video" and video_steps != 600
                      and not args.smoke else ""))
        out[sweep] = write(sweep, rows, recipe, base, command, args.out_dir)
    index = os.path.join(args.out_dir, "thinking_sweep.json")
    every = {}
    if os.path.isfile(index):
        with open(index) as f:
            every = json.load(f)
    with open(index, "w") as f:
        json.dump({**every, **out}, f, indent=1)
    return out


def write(sweep, rows, recipe, base, command, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    data = {"sweep": sweep, "recipe": recipe, "base_flags": " ".join(base), "rows": rows, "command": command}
    with open(os.path.join(out_dir, f"{sweep}.json"), "w") as f:
        json.dump(data, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.5))
    labels = [r["setting"] for r in rows][::-1]
    if sweep == "video":
        ax.barh(labels, [r["versus_copy"] for r in rows][::-1])
        ax.axvline(1.0, color="gray", linestyle="--", label="repeat the last real frame")
        ax.set_xlabel("validation SmoothL1 / that of repeating the last frame")
    else:
        for step in sorted({s for r in rows for s in r["step_losses"]}):
            ax.scatter([r["step_losses"].get(step, float("nan")) for r in rows][::-1], labels,
                       label=f"after thinking step {step}")
        ax.set_xlabel("validation loss (nats per byte)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{sweep}: one knob of {os.path.basename(recipe)} {' '.join(base)} at a time".replace("  ", " "))
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, f"{sweep}.png"), dpi=120)
    plt.close(fig)
    return data


if __name__ == "__main__":
    run_entry_point(main)
