#!/bin/bash
# The System 2 recipe of ebt_s2.sh at quickstart scale: bundled Shakespeare, bytes as tokens, 4xs, CPU,
# a few minutes. Same S2 options (fixed alpha with random per-position scale, 2-3 steps of one landscape,
# Langevin noise, no detach + truncation, replay buffer); alpha suits the 258-token vocabulary.
# Run: bash job_scripts/nlp/pretrain/ebt_s2_tiny_cpu.sh [extra flags]

RUN_NAME="ebt-4xs-s2_tiny_cpu"
MODEL_NAME="${RUN_NAME%%-*}"
MODEL_SIZE="${RUN_NAME#*-}"; MODEL_SIZE="${MODEL_SIZE%%-*}"

python train_model.py \
--run_name ${RUN_NAME} \
--modality "NLP" \
--model_name ${MODEL_NAME} \
--model_size ${MODEL_SIZE} \
\
--tokenizer "byte" \
--dataset_name "shakespeare" \
--context_length 64 \
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
--mcmc_replay_buffer \
\
--peak_learning_rate 0.0024 \
--batch_size_per_device 32 \
--max_steps 600 \
--warm_up_steps 60 \
--val_check_interval 200 \
--validation_split_pct 0.01 \
--num_workers 0 \
--log_every_n_steps 10 \
--save_top_k_ckpts 1 \
--no_wandb "$@"
