#!/bin/bash
# The video Transformer++ of baseline_transformer_vae.sh at CPU scale: Moving MNIST from the bundled digits (16
# frames of 64x64), frames average-pooled by 2 and flattened (3072 numbers per frame, no encoder network), 4xs
# Transformer++ regressing the next frame; ~3 min on 2 cores.
# Run: bash job_scripts/vid/pretrain/baseline_transformer_tiny_cpu.sh [extra flags]

RUN_NAME="baseline_transformer-4xs-vid_tiny_cpu"
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
