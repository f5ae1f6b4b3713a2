#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=3-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=ebt_img_denoise_s1
#SBATCH --output=logs/slurm/img/%x_%A_%a.out
# Image denoising EBT, the paper's setting (docs/method.md §11.4): large bidirectional EBT, patch 16, one thinking
# step from the noisy image with learnable alpha 3000 (lr x9000), COCO-2014 at 128x128 noised to level 0.1 (t = 99
# of a 1000-step linear schedule), SmoothL1 to the clean image, batch 128 on one GPU.
# Run with `bash <this script>` on a GPU node, or `sbatch <this script>`; extra flags are appended.

RUN_NAME="ebt-large-bs_128_s1_lr_"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"
mkdir -p logs/slurm/img/
lr=(0.0001)  # indexed by SLURM_ARRAY_TASK_ID; plain bash uses index 0

python train_model.py \
--run_name ${RUN_NAME}${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--modality "IMG" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--image_task "denoising" \
--denoise_images_noise_level 0.1 \
--diffusion_steps 100 \
--image_dims 128 128 \
--patch_size 16 \
--ffn_dim_multiplier 1 \
\
--mcmc_step_size 3000 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 9000 \
--mcmc_num_steps 1 \
\
--gpus "-1" \
\
--peak_learning_rate ${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--batch_size_per_device 128 \
--accumulate_grad_batches 1 \
--gradient_clip_val 1.0 \
\
--weight_decay 0.01 \
--min_lr_scale 10 \
--max_steps 100000 \
--max_scheduling_steps 1000000 \
--warm_up_steps 10000 \
\
--dataset_name "coco_medium" \
--num_workers 12 \
--check_val_every_n_epoch 5 \
--val_check_interval 1.0 \
--log_every_n_steps 20 \
--log_image_every_n_steps 1500 \
\
--wandb_project "img_denoise" \
\
--log_model_archi \
--log_gradients \
--set_matmul_precision "medium" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
