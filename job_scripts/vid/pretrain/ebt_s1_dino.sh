#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=3-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --job-name=ebt_vid_s1_dino
#SBATCH --output=logs/slurm/vid/%x_%A_%a.out
# Video EBT on DINOv2-B CLS features (docs/method.md §11.4): xl time_embed EBT predicting the next frame's 768-dim
# DINOv2 feature (ImageNet + per-dataset normalisation), 2 thinking steps, learnable alpha 30000 (lr x90000), 16
# frames 0.25 s apart from Something-Something v2. The published script failed a size assertion (docs/method.md
# §12.10); this one runs.
# Set SSV2_DIR (or pass --dataset_dir); pre-encode the latents once with utils/pre_encode_videos.py and pass
# --latents_dir to skip decoding videos and running the VAE in every step.

RUN_NAME="ebt-xl-bs_256_vid_s1_dino_lr_"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"
SSV2_DIR="${SSV2_DIR:-/path/to/something-something-v2}"
mkdir -p logs/slurm/vid/
lr=(0.0000667)  # indexed by SLURM_ARRAY_TASK_ID; plain bash uses index 0

python train_model.py \
--run_name ${RUN_NAME}${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--modality "VID" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--backbone_type "dinov2" \
--vit_backbone_size "base" \
--custom_image_normalization \
--image_dims 224 224 \
--time_between_frames 0.25 \
--context_length 15 \
\
--ebt_type "time_embed" \
--denoising_initial_condition "random_noise" \
--mcmc_step_size 30000 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 90000 \
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
--dataset_name "something" \
--dataset_dir "${SSV2_DIR}" \
--num_workers 12 \
--val_check_interval 5000 \
--log_every_n_steps 20 \
\
--wandb_project "vid_pretrain" \
\
--log_model_archi \
--log_gradients \
--set_matmul_precision "medium" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
