#!/bin/bash
# The video EBT of ebt_s1_vae.sh at CPU scale: Moving MNIST from the bundled digits (16 frames of 64x64), frames
# average-pooled by 2 and flattened (3072 numbers per frame, no encoder network), 4xs time_embed EBT with 2
# thinking steps from a copy of the latest frame (the published runs start from noise, which this budget is too
# small for), learnable alpha 3 and predictions clamped to the pixel range [-1, 1]; ~5 min on 2 cores. Alpha 3000
# (our first recipe) left it copying the latest frame and diverging in rollouts: experiments/thinking_sweep.py.
# Run: bash job_scripts/vid/pretrain/ebt_tiny_cpu.sh [extra flags]

RUN_NAME="ebt-4xs-vid_tiny_cpu"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"

python train_model.py \
--run_name ${RUN_NAME} \
--modality "VID" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--dataset_name "moving_mnist" \
--backbone_type "pixels" \
--pixel_pooling 2 \
--vae_normalization \
--image_dims 64 64 \
--context_length 15 \
\
--ebt_type "time_embed" \
--denoising_initial_condition "most_recent_embedding" \
--mcmc_step_size 3 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 3 \
--mcmc_num_steps 2 \
--absolute_clamp 1 \
\
--peak_learning_rate 0.001 \
--batch_size_per_device 16 \
--weight_decay 0.01 \
--max_steps 2000 \
--warm_up_steps 100 \
--val_check_interval 500 \
--limit_val_batches 16 \
--validation_split_pct 0.01 \
--num_workers 0 \
--log_every_n_steps 10 \
--save_top_k_ckpts 1 \
--no_wandb "$@"
