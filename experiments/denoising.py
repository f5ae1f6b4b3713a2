"""Claim 3, "EBTs denoise better with fewer forward passes": PSNR against forward passes, denoising EBT against
DiT, at the trained noise level and at an unseen higher one (paper, Fig. 7: 27.25 dB for the EBT with 3 passes
vs 26.58 dB for the DiT with 300 in distribution; 23.29 vs 19.56 dB out of distribution).

For each seed, trains the CPU recipes job_scripts/img/pretrain_denoising/{ebt,dit}_tiny_cpu.sh (bundled
natural-image crops, 32x32, noise level 0.1) side by side, then compares the checkpoints with
inference/img/psnr_vs_forward_passes.py on the same 256 held-out test crops at noise 0.1 and 0.2.
The EBT is also run with System 2 self-verification (best of N noisy samples by energy, N = 2 and 4). Writes
<out>/seed<seed>/psnr_vs_forward_passes.{csv,md,png} and <out>/denoising.json (best PSNR of each model per noise
level, with its forward passes, for each seed; and each best-of-N setting beside one sample at the same steps).

    python experiments/denoising.py             # 2 seeds: ~25 min on 2 cores
    python experiments/denoising.py --smoke     # seconds
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.common import add_training_arguments, newest_run, run_commands  # noqa: E402
from inference.img import psnr_vs_forward_passes  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point  # noqa: E402

RECIPES = {"EBT": "job_scripts/img/pretrain_denoising/ebt_tiny_cpu.sh",
           "DiT": "job_scripts/img/pretrain_denoising/dit_tiny_cpu.sh"}
NOISE_LEVELS = [0.1, 0.2]  # trained, unseen
BEST_OF = [2, 4]  # System 2 samples, kept by lowest energy
PAPER = {0.1: {"EBT": (27.25, 3), "DiT": (26.58, 300)}, 0.2: {"EBT": (23.29, 3), "DiT": (19.56, 300)}}
SMOKE_FLAGS = ["--max_steps", "3", "--warm_up_steps", "1", "--val_check_interval", "3", "--limit_val_batches", "1",
               "--limit_test_batches", "1", "--override_embedding_dim", "32", "--diffusion_steps", "10",
               "--batch_size_per_device", "4", "--log_image_every_n_steps", "0"]


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="results/denoising")
    add_training_arguments(parser)
    parser.add_argument("--smoke", action="store_true", help="3 training steps of tiny models, one seed (seconds)")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir))
    if args.smoke:
        args.seeds = args.seeds[:1]
    log_dir = os.path.join(args.out_dir, "runs")
    commands = {f"{label.lower()}_seed{seed}": ["bash", recipe, "--run_name", f"{label.lower()}_seed{seed}",
                                                "--log_dir", log_dir, "--seed", str(seed),
                                                *(SMOKE_FLAGS if args.smoke else [])]
                for seed in args.seeds for label, recipe in RECIPES.items()}
    run_commands(commands, os.path.join(args.out_dir, "logs"), args.jobs)

    best, best_of = [], []
    for seed in args.seeds:
        checkpoint = lambda label: os.path.join(newest_run(log_dir, f"{label.lower()}_seed{seed}"), "checkpoints",
                                                "last.ckpt")
        rows = psnr_vs_forward_passes.main(
            ["--ebt_ckpt", checkpoint("EBT"), "--dit_ckpt", checkpoint("DiT"), "--out_dir",
             os.path.join(args.out_dir, f"seed{seed}"), "--seed", str(seed),
             "--noise_levels", *map(str, NOISE_LEVELS), "--num_images", "8" if args.smoke else "256",
             "--ebt_steps", *(["1", "2"] if args.smoke else ["1", "2", "3", "4"]),
             "--ebt_best_of", *map(str, BEST_OF[:1] if args.smoke else BEST_OF),
             "--dit_recursions", *(["0"] if args.smoke else ["0", "1", "2"])])
        for level in NOISE_LEVELS:
            noisy = next(r["psnr"] for r in rows if r["model"] == "noisy input" and r["noise_level"] == level)
            for label in RECIPES:
                top = max((r for r in rows if r["model"] == label and r["noise_level"] == level),
                          key=lambda r: r["psnr"])
                best.append({"seed": seed, "noise_level": level, "model": label, "psnr": top["psnr"],
                             "forward_passes": top["forward_passes"], "setting": top["setting"], "noisy_psnr": noisy})
            one_sample = {r["forward_passes"]: r["psnr"] for r in rows if r["model"] == "EBT"
                          and r["noise_level"] == level}
            for r in rows:
                if r["model"].startswith("EBT best of") and r["noise_level"] == level:
                    samples = int(r["model"].rsplit(" ", 1)[1])
                    steps = r["forward_passes"] // samples
                    best_of.append({"seed": seed, "noise_level": level, "samples": samples, "steps": steps,
                                    "forward_passes": r["forward_passes"], "psnr": r["psnr"],
                                    "one_sample_psnr": one_sample[steps]})
    summary, best_of_summary = summarize(best, args.seeds), summarize_best_of(best_of)
    os.makedirs(args.out_dir, exist_ok=True)
    command = "python experiments/denoising.py" + (" --smoke" if args.smoke else "")
    with open(os.path.join(args.out_dir, "denoising.json"), "w") as f:
        json.dump({"best": best, "best_of": best_of, "summary": summary, "best_of_summary": best_of_summary,
                   "seeds": args.seeds, "paper": PAPER, "command": command,
                   "plot": os.path.join(f"seed{args.seeds[0]}", "psnr_vs_forward_passes.png")}, f, indent=1)
    return {"best": best, "best_of": best_of, "summary": summary, "best_of_summary": best_of_summary}


def summarize(best, seeds):
    """Per noise level: each model's seed-mean best PSNR, and the EBT's margin in every seed."""
    out = {}
    for level in NOISE_LEVELS:
        rows = [r for r in best if r["noise_level"] == level]
        psnr = {label: statistics.mean(r["psnr"] for r in rows if r["model"] == label) for label in RECIPES}
        margins = [next(r["psnr"] for r in rows if r["seed"] == s and r["model"] == "EBT")
                   - next(r["psnr"] for r in rows if r["seed"] == s and r["model"] == "DiT") for s in seeds]
        passes = {label: [r["forward_passes"] for r in rows if r["model"] == label] for label in RECIPES}
        out[str(level)] = {"psnr": psnr, "ebt_margin_per_seed": margins, "forward_passes": passes,
                           "noisy_psnr": statistics.mean(r["noisy_psnr"] for r in rows)}
    return out


def summarize_best_of(best_of):
    """Per noise level and N: best of N samples against one sample thinking the same steps (seed-mean PSNR), at the
    steps where best of N does best, and the gain in every seed at those steps."""
    out = {}
    for level in NOISE_LEVELS:
        for samples in sorted({r["samples"] for r in best_of}):
            rows = [r for r in best_of if r["noise_level"] == level and r["samples"] == samples]
            by_steps = {s: [r for r in rows if r["steps"] == s] for s in sorted({r["steps"] for r in rows})}
            steps = max(by_steps, key=lambda s: statistics.mean(r["psnr"] for r in by_steps[s]))
            chosen = sorted(by_steps[steps], key=lambda r: r["seed"])
            out[f"{level}/{samples}"] = {
                "noise_level": level, "samples": samples, "steps": steps, "forward_passes": steps * samples,
                "psnr": statistics.mean(r["psnr"] for r in chosen),
                "one_sample_psnr": statistics.mean(r["one_sample_psnr"] for r in chosen),
                "gain_per_seed": [r["psnr"] - r["one_sample_psnr"] for r in chosen],
                "gain_range_all_steps": [min(r["psnr"] - r["one_sample_psnr"] for r in rows),
                                         max(r["psnr"] - r["one_sample_psnr"] for r in rows)]}
    return out


if __name__ == "__main__":
    run_entry_point(main)
