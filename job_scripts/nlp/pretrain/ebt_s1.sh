#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=3-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=4
#SBATCH --job-name=ebt_s1
#SBATCH --output=logs/slurm/nlp/%x_%A_%a.out
# NLP System 1 EBT, the paper's scaling setting (docs/method.md §11.4): xxs, time_embed, 2 thinking steps, learnable
# alpha 500 (lr x1500), RedPajama-V2 documents of 257 tokens, effective batch 32 x 2 x 4 GPUs = 256.
# Run with `bash <this script>` on a GPU node, or `sbatch <this script>` on a Slurm cluster; extra flags are appended.

RUN_NAME="ebt-xxs-bs_256_s1_lr_"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"
mkdir -p logs/slurm/nlp/
lr=(0.0012)  # indexed by SLURM_ARRAY_TASK_ID; plain bash uses index 0

python train_model.py \
--run_name ${RUN_NAME}${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--modality "NLP" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--tokenizer "EleutherAI/gpt-neox-20b" \
--normalize_initial_condition \
--ebt_type "time_embed" \
--denoising_initial_condition "random_noise" \
--mcmc_step_size 500 \
--mcmc_step_size_learnable \
--mcmc_step_size_lr_multiplier 1500 \
--mcmc_num_steps 2 \
\
--context_length 256 \
\
--gpus "-1" \
\
--peak_learning_rate ${lr[${SLURM_ARRAY_TASK_ID:-0}]} \
--batch_size_per_device 32 \
--accumulate_grad_batches 2 \
--gradient_clip_val 1.0 \
\
--weight_decay 0.01 \
--min_lr_scale 10 \
--max_steps 1000000 \
--max_scheduling_steps 1000000 \
--warm_up_steps 10000 \
\
--dataset_name "pajama" \
--pretokenize_dataset \
--num_workers 12 \
--validation_split_pct 0.0005 \
--val_check_interval 15000 \
--log_every_n_steps 50 \
--save_top_k_ckpts 10 \
\
--wandb_project "nlp_pretrain" \
\
--log_model_archi \
--log_gradients \
--set_matmul_precision "medium" \
--wandb_watch \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
