#!/bin/bash
# Iterate (and so download / pre-tokenize) the training set of a run once, in one process, before the real
# multi-GPU job (docs/method.md). Pass the data flags of the job you are preparing; defaults: the paper's corpus.
# Run: bash job_scripts/debug/debug_dataloader.sh [--dataset_name fineweb --dataset_dir DIR ...]

python train_model.py \
--debug_dataloader \
--modality "NLP" \
--dataset_name "pajama" \
--pretokenize_dataset \
--tokenizer "EleutherAI/gpt-neox-20b" \
--context_length 256 \
--batch_size_per_device 64 \
--no_wandb "$@"
