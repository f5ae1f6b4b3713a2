#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=1-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=baseline_transformer_inference
#SBATCH --output=logs/slurm/nlp/%x_%A_%a.out
# Evaluation of a trained Transformer++ (docs/method.md §11.4): the same benchmarks and decoding as ebt.sh, greedy
# 2-token answers; one benchmark per array index. Architecture and training flags come from the checkpoint. Set CKPT
# (or pass --only_test_model_ckpt) and run with bash or sbatch.
# For perplexity instead of answers: --execution_mode pretrain.

RUN_NAME="baseline_transformer-xxs-baseline_gen"
CKPT="${CKPT:-your/model/ckpt}"
benchmarks=("lambada" "gsm8k" "ai2arc" "bigbench_matrixshapes" "squad" "bigbench_elementary_math_qa" "bigbench_dyck_languages")
benchmark=${benchmarks[${SLURM_ARRAY_TASK_ID:-0}]}
mkdir -p logs/slurm/nlp/

python train_model.py \
--run_name ${RUN_NAME}_${benchmark} \
--dataset_name ${benchmark} \
--batch_size_per_device 8 \
--execution_mode "inference" \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--infer_max_gen_len 2 \
--infer_topp 0.1 \
--infer_temp 0.0 \
--gpus "1" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
