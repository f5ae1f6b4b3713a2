"""Claim 4, video: next-frame prediction in an encoder's feature space, EBT against Transformer++ (the paper
reports the EBT scaling faster and reaching a lower loss at its larger scales, on Something-Something v2).

For each seed, trains the CPU recipes job_scripts/vid/pretrain/{ebt,baseline_transformer}_tiny_cpu.sh (Moving
MNIST from the bundled digits, 16 frames, pooled pixels as features) side by side and reads their final
validation SmoothL1 (teacher-forced next frame). Then rolls both checkpoints out with
job_scripts/vid/inference/rollout_tiny_cpu.sh (5 real frames, 11 predicted one at a time; the EBT also with
System 2, 4 steps per landscape) and sets the per-frame MSE beside the simplest reference, repeating the last
real frame. Writes <out>/video.{json,png}.

    python experiments/video.py             # 1 seed: ~10 min on 2 cores
    python experiments/video.py --smoke     # seconds
"""
import argparse
import csv
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the models are imported where they are used, after the arguments are checked
from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point  # noqa: E402

RECIPES = {"EBT": "job_scripts/vid/pretrain/ebt_tiny_cpu.sh",
           "Transformer++": "job_scripts/vid/pretrain/baseline_transformer_tiny_cpu.sh"}
ROLLOUT = "job_scripts/vid/inference/rollout_tiny_cpu.sh"
ROLLOUTS = {"EBT": ("EBT", []), "EBT, System 2 (4 steps per landscape)":
            ("EBT", ["--infer_ebt_advanced", "--infer_ebt_num_steps", "4"]), "Transformer++": ("Transformer++", [])}
CONDITION_FRAMES, TOTAL_FRAMES, TEST_BATCHES = 5, 16, 8
SMOKE_FLAGS = ["--max_steps", "3", "--warm_up_steps", "1", "--val_check_interval", "3", "--limit_val_batches", "1",
               "--override_embedding_dim", "32", "--batch_size_per_device", "2", "--pixel_pooling", "8"]


def slug(label):
    return label.split(",")[0].lower().replace("+", "p")


def final_validation_loss(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return [float(r["valid_loss"]) for r in csv.DictReader(f) if r.get("valid_loss")][-1]


def copy_last_frame_mse(checkpoint_path, test_batches):
    """Per-frame MSE of predicting every future frame as the last real one, on the rollouts' test clips."""
    import torch
    from torch.utils.data import DataLoader

    from model.registry import load_trained_model
    from model.vid.common import frame_features
    from tasks import task_class

    model, hp = load_trained_model(checkpoint_path)  # for the run's frozen encoder and test clips
    encoders = model.encoders
    loader = DataLoader(task_class(hp)(argparse.Namespace(**hp)).splits(model, "test")[2],
                        batch_size=hp["batch_size_per_device"])
    total, count = None, 0
    for i, batch in enumerate(loader):
        if i == test_batches:
            break
        with torch.no_grad():
            features = frame_features(batch, encoders)
        last = features[:, CONDITION_FRAMES - 1:CONDITION_FRAMES]
        mse = (features[:, CONDITION_FRAMES:TOTAL_FRAMES] - last).pow(2).mean(dim=(0, 2)) * features.shape[0]
        total, count = (mse if total is None else total + mse), count + features.shape[0]
    return (total / count).tolist()


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/video")
    add_training_arguments(parser, seeds=[33])
    parser.add_argument("--smoke", action="store_true", help="3 training steps of tiny models (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    log_dir = os.path.join(args.out_dir, "runs")
    smoke = SMOKE_FLAGS if args.smoke else []
    run_commands({f"{slug(label)}_seed{seed}": ["bash", recipe, "--run_name", f"{slug(label)}_seed{seed}",
                                                "--log_dir", log_dir, "--seed", str(seed), *smoke]
                  for seed in args.seeds for label, recipe in RECIPES.items()},
                 os.path.join(args.out_dir, "logs"), args.jobs)
    trained = {(label, seed): newest_run(log_dir, f"{slug(label)}_seed{seed}") for seed in args.seeds
               for label in RECIPES}
    test_batches = "2" if args.smoke else str(TEST_BATCHES)  # a count: "1" would read as the fraction 1.0
    rollouts = {}
    for seed in args.seeds:
        for label, (model, flags) in ROLLOUTS.items():
            name = f"rollout_{slug(label)}{'_s2' if flags else ''}_seed{seed}"
            rollouts[name] = ["bash", ROLLOUT, "--only_test_model_ckpt",
                              os.path.join(trained[model, seed], "checkpoints", "last.ckpt"), "--run_name", name,
                              "--log_dir", log_dir, "--limit_test_batches", test_batches, *flags]
    run_commands(rollouts, os.path.join(args.out_dir, "logs"), args.jobs)

    results = []
    for seed in args.seeds:
        for label, (model, flags) in ROLLOUTS.items():
            name = f"rollout_{slug(label)}{'_s2' if flags else ''}_seed{seed}"
            with open(os.path.join(newest_run(log_dir, name), "test_report.json")) as f:
                report = json.load(f)
            results.append({"model": label, "seed": seed,
                            "valid_loss": final_validation_loss(trained[model, seed]) if not flags else None,
                            "rollout_mse": [report[f"test_mse_frame_{i}"] for i in range(CONDITION_FRAMES,
                                                                                            TOTAL_FRAMES)]})
        copy = copy_last_frame_mse(os.path.join(trained["Transformer++", seed], "checkpoints", "last.ckpt"),
                                   int(test_batches))
        results.append({"model": "repeat the last real frame", "seed": seed, "valid_loss": None,
                        "rollout_mse": copy})
    summary = {}
    for label in [*ROLLOUTS, "repeat the last real frame"]:
        runs = [r for r in results if r["model"] == label]
        losses = [r["valid_loss"] for r in runs if r["valid_loss"] is not None]
        summary[label] = {"valid_loss": statistics.mean(losses) if losses else None,
                          "rollout_mse": [statistics.mean(v) for v in zip(*(r["rollout_mse"] for r in runs))]}
    write(results, summary, args.out_dir, "python experiments/video.py" + (" --smoke" if args.smoke else ""))
    return {"results": results, "summary": summary}


def write(results, summary, out_dir, command):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "video.json"), "w") as f:
        json.dump({"results": results, "summary": summary, "command": command,
                   "frames": list(range(CONDITION_FRAMES, TOTAL_FRAMES))}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, stats in summary.items():
        ax.plot(range(CONDITION_FRAMES, TOTAL_FRAMES), stats["rollout_mse"], marker="o", label=label,
                linestyle="--" if label.startswith("repeat") else "-")
    ax.set_yscale("log")
    ax.set_xlabel(f"predicted frame (frames 0-{CONDITION_FRAMES - 1} real)")
    ax.set_ylabel("MSE in feature space")
    ax.set_title("Moving MNIST rollouts")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "video.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run_entry_point(main)
