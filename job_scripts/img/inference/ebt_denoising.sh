#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=1-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=ebt_img_denoise_inference
#SBATCH --output=logs/slurm/img/%x_%A_%a.out
# Denoising evaluation of a trained image EBT (docs/method.md §11.4, §7.5): test images noised to level 0.2, which
# the model (trained at 0.1) never saw, denoised with 2 thinking steps; prints PSNR and saves noisy/denoised/clean
# grids. Architecture and training flags come from the checkpoint. Set CKPT (or pass --only_test_model_ckpt).

RUN_NAME="ebt-large-denoise_noise_0.2_2_steps"
CKPT="${CKPT:-your/model/ckpt}"
mkdir -p logs/slurm/img/

python train_model.py \
--run_name ${RUN_NAME} \
--execution_mode "inference" \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--denoise_images_noise_level 0.2 \
--infer_ebt_advanced \
--infer_ebt_num_steps 2 \
--batch_size_per_device 128 \
--log_image_every_n_steps 10 \
--gpus "1" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
