#!/bin/bash
# PSNR against forward passes, EBT vs DiT (paper Fig. 7), in distribution (noise 0.1) and at an unseen higher
# noise (0.2): EBT with 1-4 thinking steps (also best of 4 noisy samples by energy), DiT with DDIM from t recursed
# 0-2 times. Set EBT_CKPT and DIT_CKPT
# (e.g. the last.ckpt of pretrain_denoising/{ebt,dit}_tiny_cpu.sh); writes a table, a plot and grids to OUT.

EBT_CKPT="${EBT_CKPT:-your/ebt/ckpt}"
DIT_CKPT="${DIT_CKPT:-your/dit/ckpt}"
OUT="${OUT:-results/psnr_vs_forward_passes}"

python inference/img/psnr_vs_forward_passes.py \
--ebt_ckpt "${EBT_CKPT}" \
--dit_ckpt "${DIT_CKPT}" \
--noise_levels 0.1 0.2 \
--ebt_steps 1 2 3 4 \
--ebt_best_of 4 \
--dit_recursions 0 1 2 \
--num_images 256 \
--out_dir "${OUT}" "$@"
