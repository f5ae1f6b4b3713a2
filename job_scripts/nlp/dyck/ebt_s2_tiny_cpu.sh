#!/bin/bash
# The System 2 recipe of ../pretrain/ebt_s2_tiny_cpu.sh on Dyck-language completion (BIG-bench dyck_languages
# rows generated offline by data/nlp/dyck.py into $DYCK_DIR on first use): loss on the closing brackets only
# (--execution_mode finetune, from scratch), bytes as tokens, 4xs, CPU, minutes. No replay buffer: answer-masked
# rows are not replayed. Out-of-distribution rows (longer, deeper words): $DYCK_DIR/ood.
# Run: bash job_scripts/nlp/dyck/ebt_s2_tiny_cpu.sh [extra flags]

RUN_NAME="ebt-4xs-s2_dyck_tiny_cpu"
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
--normalize_initial_condition \
--ebt_type "time_embed" \
--mcmc_step_size 5 \
--no-mcmc_step_size_learnable \
--randomize_mcmc_step_size_scale 2 \
--mcmc_num_steps 1 \
--randomize_mcmc_num_steps 2 \
--randomize_mcmc_num_steps_min 2 \
--langevin_dynamics_noise 3.0 \
--no_mcmc_detach \
--truncate_mcmc \
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
