#!/bin/bash
# The denoising EBT of ebt_s1.sh at CPU scale: bundled natural-image crops at 32x32, patch 4, 4xs, one thinking
# step with learnable alpha 3000 (lr x9000), noise level 0.1, SmoothL1 to the clean image; ~4 min on 2 cores.
# Ends with the PSNR of denoised test images and noisy/denoised/clean grids in <run>/images.
# Run: bash job_scripts/img/pretrain_denoising/ebt_tiny_cpu.sh [extra flags]

RUN_NAME="ebt-4xs-denoise_tiny_cpu"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"

python train_model.py \
--run_name ${RUN_NAME} \
--modality "IMG" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--dataset_name "natural_images" \
--image_task "denoising" \
--denoise_images_noise_level 0.1 \
--diffusion_steps 100 \
--image_dims 32 32 \
--patch_size 4 \
--ffn_dim_multiplier 1 \
\
--mcmc_step_size 3000 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 9000 \
--mcmc_num_steps 1 \
\
--peak_learning_rate 0.001 \
--batch_size_per_device 32 \
--weight_decay 0.01 \
--max_steps 1500 \
--warm_up_steps 100 \
--val_check_interval 500 \
--limit_val_batches 8 \
--log_image_every_n_steps 500 \
--validation_split_pct 0.01 \
--num_workers 0 \
--log_every_n_steps 10 \
--save_top_k_ckpts 1 \
--no_wandb "$@"
