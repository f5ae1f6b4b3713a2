"""Images: denoising (PSNR of denoised test images against forward passes) and its text-to-image variant
(latent loss; pictures generated from captions)."""
import os

import torch
import torchmetrics

from data.img.splits import build_image_splits, image_collate
from inference.img.generate_image import denoise_batch, psnr, save_image_grid
from tasks.base import Task


class ImageQuality(torchmetrics.Metric):
    """Pixel MSE on [0, 255] over all images of an epoch: PSNR of the mean MSE (as published, docs/method.md §7.5)
    and the mean of per-image PSNRs."""

    def __init__(self):
        super().__init__()
        self.add_state("mse_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("psnr_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pixel_mse):
        mse = pixel_mse.double()
        self.mse_sum += mse.sum()
        self.psnr_sum += psnr(mse).sum()
        self.images += mse.numel()

    def compute(self):
        images = self.images.clamp(min=1)
        return self.mse_sum / images, self.psnr_sum / images

    def report(self, prefix):
        """{prefix}_pixel_mse, _psnr (of the mean MSE) and _psnr_per_image; then reset."""
        mean_mse, mean_psnr = self.compute()
        self.reset()
        return {f"{prefix}_pixel_mse": mean_mse.float(), f"{prefix}_psnr": torch.tensor(psnr(mean_mse)),
                f"{prefix}_psnr_per_image": mean_psnr.float()}


class DenoisingTask(Task):
    saves_pictures = True
    curve_label = "loss (SmoothL1 for the EBT, diffusion loss for the DiT)"

    def __init__(self, hp):
        super().__init__(hp)
        self.valid_images, self.test_images, self.noisy_test_images = ImageQuality(), ImageQuality(), ImageQuality()
        self.forward_passes = None

    @staticmethod
    def prepare(hp):
        if hp.get("trained_noise_level") is None:
            # the schedule is built for the training level; a test may then ask for another level
            hp["trained_noise_level"] = hp["denoise_images_noise_level"]
        return {}

    @property
    def final_test_title(self):  # what the paper compares: PSNR of denoised test images (docs/method.md §7.5)
        return f"test images denoised at noise level {self.hp.denoise_images_noise_level}"

    def splits(self, model, stage):
        hp = self.hp
        return build_image_splits(
            hp.dataset_name, hp.image_dims, hp.seed, hp.dataset_dir or None,
            clip_tokenizer=self.caption_tokenizer(model), use_rand_caption=hp.use_rand_caption,
            stage="test" if stage == "test" else None,  # training runs end with a test
            validation_fraction=hp.validation_split_pct, test_fraction=hp.validation_split_pct)

    def caption_tokenizer(self, model):
        """What tokenizes the captions that come with the images: none for denoising."""
        return None

    def collate(self):
        return image_collate

    def describe_inputs(self, model):
        hp = self.hp
        return (f"{hp.image_dims[0]}x{hp.image_dims[1]} images, patch {hp.patch_size}, "
                f"noise level {hp.denoise_images_noise_level}")

    def validation_step(self, module, batch, batch_idx, out):
        if "pixel_mse" in out:
            self.valid_images.update(out["pixel_mse"])

    def validation_report(self, module):
        return self.valid_images.report("valid") if self.valid_images.images > 0 else {}

    def test_step(self, module, batch, batch_idx):
        """Denoise test images at --denoise_images_noise_level (docs/method.md §7.5); save grids of some batches."""
        level = self.hp.denoise_images_noise_level
        with module.seeded("test", batch_idx):
            out = denoise_batch(module.model, batch["image"], level, module.inference)
        module.test_metric.update(out)
        self.test_images.update(out["pixel_mse"])
        self.noisy_test_images.update(out["noisy_pixel_mse"])  # the reference: no denoising at all
        self.forward_passes = out["forward_passes"]
        if self.due(module, batch_idx):
            name = f"test_noise_{level}_batch_{batch_idx}.png"
            module.log_picture("test_images", save_image_grid(os.path.join(module.image_dir, name),
                                                              [out["noised"], out["denoised"], batch["image"]]))

    def test_report(self, module):
        noisy_mse = self.noisy_test_images.compute()[0]
        self.noisy_test_images.reset()
        return {**module.loss_report(module.test_metric, "test"), **self.test_images.report("test"),
                "test_forward_passes": torch.tensor(float(self.forward_passes)),
                "test_noisy_psnr": torch.tensor(psnr(noisy_mse))}

    def on_train_batch_end(self, module, batch):
        if self.due(module, module.global_step):
            self.save_pictures(module, batch, f"step_{module.global_step}.png")

    @torch.no_grad()
    def save_pictures(self, module, batch, name, count=8):
        """A grid of a few images without randomness: rows from `picture_rows`."""
        model = module.model
        was_training = model.training
        model.eval()
        with module.seeded("valid", module.global_step):
            rows = self.picture_rows(model, batch, count)
        module.log_picture("training_images", save_image_grid(os.path.join(module.image_dir, name), rows))
        model.train(was_training)

    def picture_rows(self, model, batch, count):
        """Noisy / denoised / clean at the trained level."""
        clean = batch["image"][:count]
        t = model.noising.timestep_for(self.hp.denoise_images_noise_level)
        noised = model.noising.noise(clean, t)
        return [noised, model.sample(noised, t), clean]


class TextToImageTask(DenoisingTask):
    """The t2i variant: the loss in VAE-latent space, pictures generated from the captions above the real ones."""
    final_test_title = "test images (latent SmoothL1)"

    @staticmethod
    def prepare(hp):
        return {}

    def caption_tokenizer(self, model):
        return model.tokenizer  # the frozen CLIP text encoder's

    def describe_inputs(self, model):
        hp = self.hp
        return (f"{hp.image_dims[0]}x{hp.image_dims[1]} images, patch {hp.patch_size}, text-to-image on VAE latents "
                f"({hp.vae_path}), CLIP {hp.clip_text_encoder_size}")

    def test_step(self, module, batch, batch_idx):
        module.test_metric.update(module.forward_batch(batch, "test", batch_idx))
        if self.due(module, batch_idx):
            self.save_pictures(module, batch, f"test_batch_{batch_idx}.png")

    def test_report(self, module):
        return module.loss_report(module.test_metric, "test")

    def picture_rows(self, model, batch, count):
        caption = batch["caption"]
        caption = {k: v[:count] for k, v in caption.items()} if isinstance(caption, dict) else caption[:count]
        return [model.generate(caption), batch["image"][:count]]
