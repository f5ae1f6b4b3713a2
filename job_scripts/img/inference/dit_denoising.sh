#!/bin/bash
### ADDITIONAL RUN INFO ###
#SBATCH --array=0
#SBATCH --time=1-00:00:00
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --job-name=dit_img_denoise_inference
#SBATCH --output=logs/slurm/img/%x_%A_%a.out
# Denoising evaluation of a trained DiT (docs/method.md §11.4, §7.5): test images noised to level 0.2 (t = 199 for a
# model trained at 0.1), DDIM from t down to 0 and then twice more from t on its own output (600 forward passes);
# prints PSNR and saves grids. Set CKPT (or pass --only_test_model_ckpt).

RUN_NAME="dit-large-denoise_noise_0.2_recurse_2"
CKPT="${CKPT:-your/model/ckpt}"
mkdir -p logs/slurm/img/

python train_model.py \
--run_name ${RUN_NAME} \
--execution_mode "inference" \
--only_test \
--only_test_model_ckpt "${CKPT}" \
--denoise_images_noise_level 0.2 \
--infer_recurse_diffusion_n_times 2 \
--batch_size_per_device 128 \
--log_image_every_n_steps 10 \
--gpus "1" \
${SLURM_ARRAY_TASK_ID:+--is_slurm_run} "$@"
