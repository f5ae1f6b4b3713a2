"""The console's tables: losses (and perplexity, energy, PSNR) after each thinking step, and video rollouts."""


def print_loss_table(report, prefix, what, kind=None):
    """Loss, perplexity (text) and (EBT) mean energy after each thinking step; PSNR for images."""
    steps = sum(1 for k in report if k.startswith(f"{prefix}_loss_step_"))
    has_energy = f"{prefix}_energy_step_1" in report
    is_text = f"{prefix}_perplexity_step_1" in report
    kind = kind or ("token-weighted" if is_text else "SmoothL1 to the clean images" if f"{prefix}_psnr" in report
                    else "diffusion training loss")
    print(f"\n{what} ({kind}):")
    print(f"  {'after step':>10}  {'loss':>8}" + (f"  {'perplexity':>10}" if is_text else "")
          + (f"  {'energy':>9}" if has_energy else ""))
    if has_energy:
        print(f"  {'(guess)':>10}  {'':>8}" + (f"  {'':>10}" if is_text else "")
              + f"  {report[f'{prefix}_energy_step_1']:>9.4f}")
    for i in range(1, steps + 1):
        line = f"  {i:>10}  {report[f'{prefix}_loss_step_{i}']:>8.4f}"
        if is_text:
            line += f"  {report[f'{prefix}_perplexity_step_{i}']:>10.3f}"
        if has_energy:  # the energy after step i is the one step i+1 starts from, or the final one
            line += f"  {report.get(f'{prefix}_energy_step_{i + 1}', report[f'{prefix}_energy_final']):>9.4f}"
        print(line)
    if f"{prefix}_psnr" in report:
        passes = report.get(f"{prefix}_forward_passes")
        print(f"  PSNR {report[f'{prefix}_psnr']:.2f} dB (of the mean pixel MSE {report[f'{prefix}_pixel_mse']:.1f}; "
              f"mean of per-image PSNRs {report[f'{prefix}_psnr_per_image']:.2f} dB)"
              + (f", {passes:.0f} forward passes" if passes else "")
              + (f"; the noisy input: {report[f'{prefix}_noisy_psnr']:.2f} dB" if f"{prefix}_noisy_psnr" in report else ""))


def print_rollout(report, args):
    """Per-generated-frame errors of --infer_generate_video rollouts, in the encoder's feature space."""
    k = args.infer_video_condition_frames
    print(f"\nrollouts: {k} real frames, then frames {k}..{args.infer_max_gen_len - 1} predicted one at a time")
    print(f"  MSE {report['test_mse_loss']:.4f}, SmoothL1 {report['test_smooth_l1_loss']:.4f} (first predicted "
          f"frame: MSE {report['test_first_frame_mse_loss']:.4f}, SmoothL1 {report['test_first_frame_smooth_l1_loss']:.4f})")
    frames = sorted((int(key.rsplit("_", 1)[1]), value) for key, value in report.items()
                    if key.startswith("test_mse_frame_"))
    print("  MSE per frame: " + ", ".join(f"{i}: {v:.4f}" for i, v in frames))
