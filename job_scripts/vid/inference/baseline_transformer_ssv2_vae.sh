#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=1-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=baseline_vid_inference_ssv2
#SBATCH --output=logs/slurm/vid/%x_%A_%a.out
# Video Transformer++ rollouts (docs/method.md §11.4, §8.4) on ssv2: condition on 5 real frames, predict frames
# 5..15 one at a time with the key/value cache; reports latent MSE/SmoothL1 per generated frame and saves
# real-vs-predicted strips. Set CKPT and SSV2_DIR.

RUN_NAME="baseline_transformer-medium-vid_rollout_ssv2"
CKPT="${CKPT:-your/model/ckpt}"
SSV2_DIR="${SSV2_DIR:-/path/to/ssv2}"
mkdir -p logs/slurm/vid/

python train_model.py \
--run_name ${RUN_NAME} \
--dataset_name "ssv2" \
--dataset_dir "${SSV2_DIR}" \
--execution_mode "inference" \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--infer_max_gen_len 16 \
--infer_video_condition_frames 5 \
--infer_generate_video \
--batch_size_per_device 8 \
--gpus "1" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
