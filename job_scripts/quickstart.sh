#!/bin/bash
# The offline CPU quickstart: a small System 1 EBT (4xs: 2 layers, width 128; time_embed; 2 thinking steps
# with learnable alpha 500) on the bundled Shakespeare corpus, bytes as tokens, 1000 steps of 32 rows x 64
# bytes, on CPU in minutes. It ends with the validation loss, perplexity and energy after each thinking step
# and writes checkpoints, metrics.csv, training_curves.png and console.log into logs/quickstart/<time>/.
# Run: bash job_scripts/quickstart.sh [extra flags] (extra flags are appended, so they win);
# MODEL_NAME=baseline_transformer bash job_scripts/quickstart.sh trains the Transformer++ on the same data.

MODEL_NAME="${MODEL_NAME:-ebt}"
THINKING=()  # the EBT's options; the Transformer++ does not think, and refuses them
if [ "${MODEL_NAME}" = "ebt" ]; then
  THINKING=(--normalize_initial_condition --ebt_type "time_embed" --denoising_initial_condition "random_noise"
            --mcmc_step_size 500 --mcmc_step_size_learnable --mcmc_step_size_lr_multiplier 1500 --mcmc_num_steps 2)
fi

python train_model.py \
--run_name "quickstart" \
--modality "NLP" \
--model_name "${MODEL_NAME}" \
--model_size "4xs" \
\
--tokenizer "byte" \
--dataset_name "shakespeare" \
--context_length 64 \
"${THINKING[@]}" \
\
--peak_learning_rate 0.0024 \
--batch_size_per_device 32 \
--accumulate_grad_batches 1 \
--gradient_clip_val 1.0 \
--weight_decay 0.01 \
--min_lr_scale 10 \
--max_steps 1000 \
--warm_up_steps 100 \
\
--validation_split_pct 0.01 \
--num_workers 0 \
--val_check_interval 200 \
--log_every_n_steps 10 \
--save_top_k_ckpts 1 "$@"
