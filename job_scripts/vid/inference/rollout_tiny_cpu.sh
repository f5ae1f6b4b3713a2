#!/bin/bash
# Rollouts of a checkpoint of pretrain/{ebt,baseline_transformer}_tiny_cpu.sh: 5 real Moving MNIST frames, then
# frames 5..15 predicted one at a time; prints the error per frame and saves real-vs-predicted strips and GIFs.
# Set CKPT; for the EBT, add System 2 thinking with e.g. --infer_ebt_advanced --infer_ebt_num_steps 4.

RUN_NAME="vid_rollout_tiny_cpu"
CKPT="${CKPT:-your/model/ckpt}"

python train_model.py \
--run_name ${RUN_NAME} \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--infer_generate_video \
--infer_video_condition_frames 5 \
--infer_max_gen_len 16 \
--limit_test_batches 8 \
--log_image_every_n_steps 4 \
--no_wandb "$@"
