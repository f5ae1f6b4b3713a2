#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=3-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --job-name=ebt_t2i_s1
#SBATCH --output=logs/slurm/img/%x_%A_%a.out
# Text-to-image EBT (docs/method.md §11.4, §7.6): large bidirectional EBT on 32x32x4 SD-VAE latents of 256x256
# COCO-2014 images, patch 2, conditioned on CLIP-large caption embeddings; 2 thinking steps from random latents with
# learnable alpha 3000 (lr x9000); effective batch 16 x 4 x 4 GPUs = 256.
# Run with `bash <this script>` on a GPU node, or `sbatch <this script>`; extra flags are appended.

RUN_NAME="ebt-large-bs_256_t2i_s1_lr_"
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
--image_task "t2i" \
--clip_text_encoder_size "large" \
--image_dims 256 256 \
--patch_size 2 \
--ffn_dim_multiplier 1 \
\
--denoising_initial_condition "random_noise" \
--mcmc_step_size 3000 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 9000 \
--mcmc_num_steps 2 \
\
--gpus "-1" \
\
--peak_learning_rate ${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--batch_size_per_device 16 \
--accumulate_grad_batches 4 \
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
--wandb_project "img_t2i" \
\
--log_model_archi \
--log_gradients \
--set_matmul_precision "medium" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
