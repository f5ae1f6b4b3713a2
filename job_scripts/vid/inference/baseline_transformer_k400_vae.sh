#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=1-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=baseline_vid_inference_k400
#SBATCH --output=logs/slurm/vid/%x_%A_%a.out
# Video Transformer++ rollouts (docs/method.md §11.4, §8.4) on k400: condition on 5 real frames, predict frames
# 5..15 one at a time with the key/value cache; reports latent MSE/SmoothL1 per generated frame and saves
# real-vs-predicted strips. Set CKPT and K400_DIR.

RUN_NAME="baseline_transformer-medium-vid_rollout_k400"
CKPT="${CKPT:-your/model/ckpt}"
K400_DIR="${K400_DIR:-/path/to/k400}"
mkdir -p logs/slurm/vid/

python train_model.py \
--run_name ${RUN_NAME} \
--dataset_name "k400" \
--dataset_dir "${K400_DIR}" \
--execution_mode "inference" \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--infer_max_gen_len 16 \
--infer_video_condition_frames 5 \
--infer_generate_video \
--batch_size_per_device 8 \
--gpus "1" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
