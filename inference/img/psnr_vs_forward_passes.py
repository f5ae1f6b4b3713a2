"""PSNR against the number of forward passes: a trained denoising EBT against a trained DiT (paper, Fig. 7).

Both checkpoints denoise the same test images, noised to each --noise_levels value (the first is usually
the level they were trained at; a higher one is unseen noise). The EBT thinks for 1, 2, 3 ... steps
(`--ebt_steps`; each step is a forward pass plus an input-gradient backward); the DiT runs DDIM from the
noise level's t down to 0 (t + 1 passes) and the paper's recursion, r more times from t on its own
output ((t + 1)(r + 1) passes, `--dit_recursions`). Writes <out>/psnr_vs_forward_passes.{csv,md,png}.

    python inference/img/psnr_vs_forward_passes.py --ebt_ckpt EBT.ckpt --dit_ckpt DIT.ckpt --out_dir results/
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# torch, the data and the models are imported where they are used, after the arguments are checked
from utils.usage import (Parser, UsageError, check, input_path_problem, output_path_problem,  # noqa: E402
                         run_entry_point, whole_number)

CHECKPOINT_FLAGS = {"ebt": "--ebt_ckpt", "dit": "--dit_ckpt"}  # --model_name -> the flag its checkpoint goes to


def load_image_model(path, model_name):
    """(model in eval mode, its hyperparameters) from a training checkpoint of an image denoiser `model_name`."""
    from model.registry import load_trained_model

    flag = CHECKPOINT_FLAGS[model_name]
    try:
        model, hp = load_trained_model(path)
    except ValueError as error:
        raise UsageError(f"{flag} {error}") from error
    task = f"{hp.get('modality')}{' ' + hp.get('image_task', 'denoising') if hp.get('modality') == 'IMG' else ''}"
    if task != "IMG denoising":
        raise UsageError(f"{flag} {path} is a --modality {task} checkpoint; this script compares image denoisers "
                         "(--modality IMG --image_task denoising)")
    if hp["model_name"] != model_name:
        other = CHECKPOINT_FLAGS.get(hp["model_name"])
        raise UsageError(f"{flag} {path} is a --model_name {hp['model_name']} checkpoint"
                         + (f"; pass it as {other}" if other else ""))
    return model, hp


def noise_level(text):
    """argparse type: a noise level in (0, 1], a fraction of the way through the trained noise schedule."""
    try:
        level = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < level <= 1:
        raise argparse.ArgumentTypeError(f"{level:g}: must be in (0, 1]")
    return level


def evaluate(model, images, noise_level, batch_size, inference=None, seed=0):
    """Mean pixel MSE, PSNR (of the mean MSE, as published), mean per-image PSNR and forward passes."""
    import torch

    from inference.img.generate_image import denoise_batch, psnr

    torch.manual_seed(seed)  # the same noise for every setting
    mses, passes, first = [], 0, None
    for start in range(0, images.shape[0], batch_size):
        out = denoise_batch(model, images[start:start + batch_size], noise_level, inference)
        mses.append(out["pixel_mse"])
        passes = out["forward_passes"]
        first = first or out
    mse = torch.cat(mses).double()
    per_image = psnr(mse).mean()
    return dict(pixel_mse=float(mse.mean()), psnr=psnr(mse.mean()), psnr_per_image=float(per_image),
                forward_passes=passes, timestep=first["timestep"]), first


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ebt_ckpt", required=True, help="checkpoint of --modality IMG --model_name ebt")
    parser.add_argument("--dit_ckpt", required=True, help="checkpoint of --modality IMG --model_name dit")
    parser.add_argument("--noise_levels", type=noise_level, nargs="+", default=[0.1, 0.2],
                        help="test noise levels in (0, 1] (the trained one first, then unseen ones)")
    parser.add_argument("--ebt_steps", type=whole_number(1), nargs="+", default=[1, 2, 3, 4],
                        help="EBT thinking steps")
    parser.add_argument("--ebt_best_of", type=whole_number(2), nargs="*", default=[],
                        help="also think from N noisy copies of each image with Langevin noise and keep the sample of "
                             "lowest energy (System 2 self-verification); N x steps passes")
    parser.add_argument("--ebt_best_of_noise", type=float, default=0.1,
                        help="Langevin noise std of the best-of-N samples (pixels in [-1, 1])")
    parser.add_argument("--dit_recursions", type=whole_number(0), nargs="+", default=[0, 1, 2],
                        help="DiT: DDIM from t, then r more times (infer_recurse_diffusion_n_times)")
    parser.add_argument("--num_images", type=whole_number(1), default=64,
                        help="test images (the first ones of the split)")
    parser.add_argument("--batch_size", type=whole_number(1), default=32)
    parser.add_argument("--dataset_dir", default=None, help="where the test images live, if not bundled")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--out_dir", default="results/psnr_vs_forward_passes")
    args = parser.parse_args(argv)
    check(input_path_problem("--ebt_ckpt", args.ebt_ckpt), input_path_problem("--dit_ckpt", args.dit_ckpt),
          args.dataset_dir and input_path_problem("--dataset_dir", args.dataset_dir, folder=True),
          output_path_problem("--out_dir", args.out_dir),
          None if not args.ebt_best_of or args.ebt_best_of_noise > 0 else
          "--ebt_best_of needs --ebt_best_of_noise > 0: without noise every sample thinks the same way")
    import torch

    from data.img.splits import build_image_splits, image_collate
    from inference.img.generate_image import psnr, save_image_grid
    from model.config import InferenceConfig
    from model.img.denoising import pixel_mse

    ebt, ebt_hp = load_image_model(args.ebt_ckpt, "ebt")
    dit, dit_hp = load_image_model(args.dit_ckpt, "dit")
    if (ebt_hp["dataset_name"], list(ebt_hp["image_dims"])) != (dit_hp["dataset_name"], list(dit_hp["image_dims"])):
        raise UsageError("the two checkpoints were trained on different data or image sizes; compare like with like")
    _, _, test = build_image_splits(ebt_hp["dataset_name"], ebt_hp["image_dims"], ebt_hp["seed"],
                                    args.dataset_dir or ebt_hp.get("dataset_dir") or None, stage="test",
                                    validation_fraction=ebt_hp["validation_split_pct"],
                                    test_fraction=ebt_hp["validation_split_pct"])
    if len(test) == 0:
        raise UsageError(f"the test split of {ebt_hp['dataset_name']} has no images")
    count = min(args.num_images, len(test))
    images = image_collate([test[i] for i in range(count)])["image"]
    os.makedirs(args.out_dir, exist_ok=True)

    rows = []
    for level in args.noise_levels:
        torch.manual_seed(args.seed)
        noisy = dit.noising.noise(images, dit.noising.timestep_for(level))
        rows.append(dict(model="noisy input", noise_level=level, setting="-", forward_passes=0,
                         psnr=psnr(pixel_mse(noisy, images).mean()), psnr_per_image=None))
        for steps in args.ebt_steps:
            # 1 means "as trained" (mcmc_num_steps) in the System 2 plan, docs/method.md §5.1
            result, out = evaluate(ebt, images, level, args.batch_size, InferenceConfig(infer_ebt_num_steps=steps),
                                   args.seed)
            steps = result["forward_passes"]
            rows.append(dict(model="EBT", noise_level=level, setting=f"{steps} thinking steps", **result))
            print(f"EBT  level {level}: {steps} steps -> PSNR {result['psnr']:.2f} dB", flush=True)
            if steps == max(args.ebt_steps):
                save_image_grid(os.path.join(args.out_dir, f"ebt_noise_{level}.png"),
                                [out["noised"], out["denoised"], images[:args.batch_size]])
        for samples in args.ebt_best_of:
            for steps in args.ebt_steps:
                icfg = InferenceConfig(infer_ebt_num_steps=steps, infer_generated_samples=samples,
                                       infer_langevin_dynamics_noise=args.ebt_best_of_noise)
                result, _ = evaluate(ebt, images, level, args.batch_size, icfg, args.seed)
                thought = result["forward_passes"] // samples
                rows.append(dict(model=f"EBT best of {samples}", noise_level=level,
                                 setting=f"{thought} steps x {samples} samples", **result))
                print(f"EBT  level {level}: best of {samples}, {thought} steps -> PSNR {result['psnr']:.2f} dB",
                      flush=True)
        for r in args.dit_recursions:
            dit.cfg.infer_recurse_diffusion_n_times = r
            result, out = evaluate(dit, images, level, args.batch_size, None, args.seed)
            rows.append(dict(model="DiT", noise_level=level, setting=f"DDIM from t={result['timestep']}, r={r}",
                             **result))
            print(f"DiT  level {level}: r={r} -> PSNR {result['psnr']:.2f} dB, {result['forward_passes']} passes",
                  flush=True)
            if r == args.dit_recursions[0]:
                save_image_grid(os.path.join(args.out_dir, f"dit_noise_{level}.png"),
                                [out["noised"], out["denoised"], images[:args.batch_size]])
    write_outputs(rows, args.out_dir, f"{ebt_hp['dataset_name']} {ebt_hp['image_dims'][0]}px, {count} test images")
    return rows


def write_outputs(rows, out_dir, what):
    fields = ["model", "noise_level", "setting", "forward_passes", "psnr", "psnr_per_image", "pixel_mse", "timestep"]
    with open(os.path.join(out_dir, "psnr_vs_forward_passes.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
    lines = [f"PSNR (dB, of the mean pixel MSE) against forward passes: {what}", "",
             "| model | noise level | setting | forward passes | PSNR | mean per-image PSNR |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['noise_level']} | {r['setting']} | {r['forward_passes']} | {fmt(r['psnr'])} | "
              f"{fmt(r.get('psnr_per_image'))} |" for r in rows]
    with open(os.path.join(out_dir, "psnr_vs_forward_passes.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for level, style in zip(sorted({r["noise_level"] for r in rows}), ["-", "--", ":", "-."] * 4):
        models = ["EBT"] + sorted({r["model"] for r in rows if r["model"].startswith("EBT best")}) + ["DiT"]
        for model, marker in zip(models, ["o", "^", "v", "<", ">", "D"][:len(models) - 1] + ["s"]):
            points = sorted((r["forward_passes"], r["psnr"]) for r in rows
                            if r["model"] == model and r["noise_level"] == level)
            if points:
                ax.plot(*zip(*points), style, marker=marker, label=f"{model}, noise {level}")
        noisy = [r["psnr"] for r in rows if r["model"] == "noisy input" and r["noise_level"] == level]
        ax.axhline(noisy[0], color="gray", linestyle=style, linewidth=0.8, label=f"noisy input, noise {level}")
    ax.set_xscale("log")
    ax.set_xlabel("forward passes (EBT: thinking steps x samples; DiT: DDIM evaluations)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(what)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "psnr_vs_forward_passes.png"), dpi=120)
    plt.close(fig)
    print(f"table: {os.path.join(out_dir, 'psnr_vs_forward_passes.md')}\nplot:  "
          f"{os.path.join(out_dir, 'psnr_vs_forward_passes.png')}")


if __name__ == "__main__":
    run_entry_point(main)
