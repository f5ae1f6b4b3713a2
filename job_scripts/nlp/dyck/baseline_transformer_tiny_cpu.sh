#!/bin/bash
# The Transformer++ beside ebt_s2_tiny_cpu.sh: the same Dyck-completion rows, size, context, batch, learning rate
# and schedule; one forward pass per prediction (nothing to think with).
# Run: bash job_scripts/nlp/dyck/baseline_transformer_tiny_cpu.sh [extra flags]

RUN_NAME="baseline_transformer-4xs-dyck_tiny_cpu"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"
DYCK_DIR="${DYCK_DIR:-${EBT_CACHE_DIR:-$HOME/.cache/ebt}/dyck}"
[ -f "${DYCK_DIR}/train.jsonl" ] || python -m data.nlp.dyck --out_dir "${DYCK_DIR}" || exit

python train_model.py \
--run_name ${RUN_NAME} \
--modality "NLP" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--tokenizer "byte" \
--dataset_name "bigbench_dyck_languages" \
--dataset_dir "${DYCK_DIR}" \
--execution_mode "finetune" \
--context_length 80 \
\
--peak_learning_rate 0.0024 \
--batch_size_per_device 32 \
--max_steps 2000 \
--warm_up_steps 200 \
--val_check_interval 500 \
--num_workers 0 \
--log_every_n_steps 10 \
--save_top_k_ckpts 1 \
--no_wandb "$@"
