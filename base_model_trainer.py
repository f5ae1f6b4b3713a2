"""The LightningModule that trains and evaluates every model: data, optimisation, logging (docs/method.md §10.4)."""
import contextlib
import gc
import json
import os
from argparse import Namespace

import lightning as L
import torch
import torchmetrics
from torch.utils.data import DataLoader

from data.vid.transforms import denormalize_frames
from data.nlp import reference_answer
from data.tasks import data_task
from data.samplers import ResumableBatchSampler
from inference.img.generate_image import denoise_batch, psnr, save_image_grid
from inference.nlp.generate_text import SamplingConfig, generate
from inference.vid.generate_video import rollout, rollout_metrics, save_frame_strips
from model.config import InferenceConfig
from model.registry import build_model, build_video_encoder
from model.vid.common import frame_features
from utils.metrics import exact_match, token_f1
from utils.optimization import OPTIMIZERS, adamw_implementation, build_lr_scheduler, build_param_groups

def step_seed(seed, step, rank=0, phase="train"):
    """Seed of one step's randomness (the initial guesses), a pure function of (seed, step, rank, phase).

    This is what makes a resumed run repeat an uninterrupted one exactly: nothing else that touches
    the global RNG in between (data-loader seeding, validation) changes the thinking noise.
    """
    return hash((seed, step, rank, ("train", "valid", "test").index(phase))) % 2**63


class TokenWeightedLoss(torchmetrics.Metric):
    """Per-thinking-step loss and energy averaged over all target tokens of an epoch (not per batch).

    exp of this mean is the true perplexity; the published mean of per-batch exp(loss) overstates it
    (docs/method.md §12.2). Sums are all-reduced across DDP ranks.
    """

    def __init__(self, num_steps):
        super().__init__()
        self.add_state("loss_sum", torch.zeros(num_steps, dtype=torch.float64), dist_reduce_fx="sum")
        # energies before each step, then after the last one
        self.add_state("energy_sum", torch.zeros(num_steps + 1, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, out):
        tokens = out["count"]
        self.loss_sum += out["step_losses"].double() * tokens
        if "step_energies" in out:
            self.energy_sum += torch.cat([out["step_energies"], out["final_energy"].reshape(1)]).double() * tokens
        self.tokens += tokens

    def compute(self):
        tokens = self.tokens.clamp(min=1)
        return self.loss_sum / tokens, self.energy_sum / tokens


class ImageQuality(torchmetrics.Metric):
    """Pixel MSE on [0, 255] over all images of an epoch: PSNR of the mean MSE (as published, docs/method.md §7.5) and
    the mean of per-image PSNRs."""

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


class ModelTrainer(L.LightningModule):
    """Owns the datasets and splits, dataloaders, the model, the optimizer and the LR schedule."""

    def __init__(self, hparams):
        super().__init__()
        hp = vars(hparams) if isinstance(hparams, Namespace) else dict(hparams)
        if hp.get("modality") == "IMG" and hp.get("trained_noise_level") is None:
            # the schedule is built for the training level; a test may then ask for another level
            hp["trained_noise_level"] = hp["denoise_images_noise_level"]
        video_encoder = build_video_encoder(hp) if hp.get("modality") == "VID" else None  # loaded once
        if video_encoder is not None and hp.get("feature_dim") is None:
            hp["feature_dim"] = video_encoder.feature_dim  # the space the models predict in
        self.save_hyperparameters(hp)
        self.model = build_model(self.hparams, video_encoder)
        is_ebt = hp["model_name"] == "ebt"
        self.is_image = hp.get("modality") == "IMG"
        self.is_text_to_image = self.is_image and hp.get("image_task") == "t2i"
        self.is_video = hp.get("modality") == "VID"
        self.rollout_metrics = {}  # --infer_generate_video: name -> MeanMetric
        self.inference = InferenceConfig.from_hparams(hp) if is_ebt and hp.get("infer_ebt_advanced") else None
        num_steps = self.model.num_evaluation_steps() if is_ebt else 1
        self.valid_metric = TokenWeightedLoss(num_steps)
        self.test_metric = TokenWeightedLoss(self.model.num_inference_steps(self.inference) if self.inference
                                             else num_steps)
        self.valid_images, self.test_images, self.noisy_test_images = ImageQuality(), ImageQuality(), ImageQuality()
        self.flops_per_token = self.model.estimate_flops()
        self.image_dir = None  # set by train_model.py: where denoising grids are saved
        self.tokenizer = self.train_dataset = self.valid_dataset = self.test_dataset = None
        self._data_ready = False
        # inference mode: mean exact match and token F1 over all answers (all-reduced across ranks)
        self.exact_match, self.token_f1 = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()
        self.results_file = None  # opened by train_model.py for --execution_mode inference

    # ------------------------------------------------------------------------------ data

    def setup(self, stage):
        if self._data_ready:  # built once, also when train_model.py builds it before Lightning
            return
        self.data_task = data_task(self.hparams)
        self.tokenizer = getattr(self.data_task, "tokenizer", None)
        self.train_dataset, self.valid_dataset, self.test_dataset = self.data_task.splits(self.model, stage)
        self._data_ready = True

    def _loader_kwargs(self):
        workers = self.hparams.num_workers
        return dict(collate_fn=self.data_task.collate(), num_workers=workers,
                    persistent_workers=workers > 0 and not self.data_task.restart_workers_each_epoch,
                    pin_memory=torch.cuda.is_available(),
                    prefetch_factor=self.hparams.prefetch_factor if workers > 0 else None)

    def train_dataloader(self):
        self.train_batch_sampler = ResumableBatchSampler(
            len(self.train_dataset), self.hparams.batch_size_per_device, self.hparams.seed,
            shuffle=not self.hparams.no_shuffle, rank=self.global_rank, world_size=self.trainer.world_size)
        if getattr(self, "_resume_position", None):
            self.train_batch_sampler.resume(*self._resume_position)
        return DataLoader(self.train_dataset, batch_sampler=self.train_batch_sampler, **self._loader_kwargs())

    def _evaluation_loader(self, dataset):
        sampler = None
        if self.trainer.world_size > 1:
            sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.hparams.batch_size_per_device, sampler=sampler,
                          **self._loader_kwargs())

    def val_dataloader(self):
        return self._evaluation_loader(self.valid_dataset)

    def test_dataloader(self):
        return self._evaluation_loader(self.test_dataset)

    def on_train_end(self):
        if self.trainer.world_size > 1:  # DDP replicas must end identical; say so, or stop loudly
            checksum = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum()
            gathered = self.all_gather(checksum)
            if not torch.allclose(gathered, gathered[0]):
                raise RuntimeError(f"DDP ranks ended with different parameters: checksums {gathered.tolist()}")
            if self.global_rank == 0:
                print(f"parameters identical on {self.trainer.world_size} ranks")

    def on_save_checkpoint(self, checkpoint):
        # batches of this epoch already fetched for training (a save inside on_train_batch_end has not
        # marked the current one completed yet, Lightning finishes that on restart)
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        checkpoint["train_data_position"] = (self.current_epoch, progress.ready)

    def on_load_checkpoint(self, checkpoint):
        self._resume_position = checkpoint.get("train_data_position")

    # ------------------------------------------------------------------------------ steps

    def _forward(self, batch, phase, step):
        # the energy after thinking costs one more forward: every evaluation batch, every logged training step
        extra = {}
        if self.hparams.model_name == "ebt":
            extra["final_energy"] = phase != "train" or (self.global_step + 1) % self.hparams.log_every_n_steps == 0
            if phase == "test" and self.inference is not None:
                extra = {"inference": self.inference}
        with self.seeded(phase, step):
            return self.model.forward_loss_wrapper(batch, phase, **extra)

    @contextlib.contextmanager
    def seeded(self, phase, step):
        """Randomness of one step from step_seed, leaving the global RNG streams untouched."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(step_seed(self.hparams.seed, step, self.global_rank, phase))
            yield

    def on_train_epoch_start(self):
        if hasattr(self.train_dataset, "set_epoch"):  # a new random window of every video each epoch
            self.train_dataset.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx):
        # also after resuming past the warm-up: the switch is not part of the weights
        if not getattr(self, "_warm_up_done", False) and self.global_step >= self.hparams.warm_up_steps:
            self.model.warm_up_finished()
            self._warm_up_done = True

    def training_step(self, batch, batch_idx):
        out = self._forward(batch, "train", self.global_step * self.trainer.accumulate_grad_batches + batch_idx)
        logs = {k: v for k, v in out.items()
                if k not in ("loss", "step_losses", "step_energies", "count", "pixel_mse")}
        for i, loss in enumerate(out["step_losses"]):
            logs[f"loss_step_{i + 1}"] = loss
        for i, energy in enumerate(out.get("step_energies", [])):
            logs[f"energy_step_{i + 1}"] = energy
        if self.model.is_ebt:
            logs["alpha"] = self.model.alpha.detach()
        # curves against compute, not only steps: tokens the transformer saw (text tokens, frames, patches)
        tokens = (self.global_step + 1) * self.trainer.accumulate_grad_batches * self.trainer.world_size * \
            self.hparams.batch_size_per_device * self.model.tokens_per_sample
        logs["tokens"] = float(tokens)
        logs["flops"] = float(tokens * self.flops_per_token)
        for group in self.optimizers().optimizer.param_groups:
            logs[f"lr_{group['name']}"] = group["lr"]
        self.log_dict({f"train_{k}": v for k, v in logs.items()}, prog_bar=False)
        self.log("train_loss", out["loss"].detach(), prog_bar=True)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self._forward(batch, "valid", batch_idx)
        self.valid_metric.update(out)
        if "pixel_mse" in out:
            self.valid_images.update(out["pixel_mse"])

    def on_validation_epoch_end(self):
        report = self.loss_report(self.valid_metric, "valid")
        if self.valid_images.images > 0:
            report.update(self.image_report(self.valid_images, "valid"))
        self.log("valid_loss", report.pop("valid_loss"), prog_bar=True)
        self.log_dict(report)
        self.valid_metric.reset()
        self.valid_images.reset()

    def test_step(self, batch, batch_idx):
        if self.is_video and self.hparams.infer_generate_video:
            return self.rollout_step(batch, batch_idx)
        if self.is_text_to_image:
            self.test_metric.update(self._forward(batch, "test", batch_idx))
            every = self.hparams.log_image_every_n_steps
            if every > 0 and batch_idx % every == 0 and self.image_dir and self.global_rank == 0:
                self.save_training_images(batch, f"test_batch_{batch_idx}.png")
            return
        if self.is_image:
            return self.denoising_step(batch, batch_idx)
        if self.answers_questions:
            return self.generation_step(batch, batch_idx)
        self.test_metric.update(self._forward(batch, "test", batch_idx))

    def denoising_step(self, batch, batch_idx):
        """Denoise test images at --denoise_images_noise_level (docs/method.md §7.5); save the first batch's grid."""
        with self.seeded("test", batch_idx):
            out = denoise_batch(self.model, batch["image"], self.hparams.denoise_images_noise_level, self.inference)
        self.test_metric.update(out)
        self.test_images.update(out["pixel_mse"])
        self.noisy_test_images.update(out["noisy_pixel_mse"])  # the reference: no denoising at all
        self.forward_passes = out["forward_passes"]
        every = self.hparams.log_image_every_n_steps
        if every > 0 and batch_idx % every == 0 and self.image_dir and self.global_rank == 0:
            name = f"test_noise_{self.hparams.denoise_images_noise_level}_batch_{batch_idx}.png"
            self.log_picture("test_images", save_image_grid(os.path.join(self.image_dir, name),
                                                            [out["noised"], out["denoised"], batch["image"]]))

    def rollout_step(self, batch, batch_idx):
        """--infer_generate_video: condition on the first frames, predict the rest one at a time (cached), score
        them against the true features and save real-vs-predicted strips (docs/method.md §8.4)."""
        hp = self.hparams
        features = frame_features(batch, self.model.encoders)
        k, total = hp.infer_video_condition_frames, hp.infer_max_gen_len
        with self.seeded("test", batch_idx):
            predicted = rollout(self.model, features, k, total, self.inference)
        metrics = rollout_metrics(predicted, features[:, k:total])
        for name, value in metrics.items():
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                key = f"test_{name}" if len(values) == 1 else f"test_mse_frame_{k + i}"
                if key not in self.rollout_metrics:
                    self.rollout_metrics[key] = torchmetrics.MeanMetric().to(self.device)
                self.rollout_metrics[key].update(v, weight=features.shape[0])
        every = hp.log_image_every_n_steps
        if every > 0 and batch_idx % every == 0 and self.image_dir and self.global_rank == 0:
            encoder = self.model.encoders
            # back to frames, then to [0, 1] from the data's normalisation (aggregate + custom mixes two)
            normalization = self.data_task.normalization(self.model)
            if encoder.can_decode and not (hp.dataset_name == "aggregate" and normalization == "custom"):
                to_pixels = lambda f: denormalize_frames(encoder.decode(f), normalization,
                                                         hp.dataset_name)[0].clamp(0, 1)
                real = to_pixels(features[:1, :total])
                fake = to_pixels(torch.cat([features[:1, :k], predicted[:1]], 1))
                base = os.path.join(self.image_dir, f"rollout_batch_{batch_idx}")
                self.log_picture("rollouts", save_frame_strips(base + ".png", [real, fake], base + ".gif"))

    def image_report(self, metric, prefix):
        mean_mse, mean_psnr = metric.compute()
        return {f"{prefix}_pixel_mse": mean_mse.float(), f"{prefix}_psnr": torch.tensor(psnr(mean_mse)),
                f"{prefix}_psnr_per_image": mean_psnr.float()}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        every = self.hparams.get("manual_gc_collect_every_n_steps", -1)
        if every > 0 and self.global_step % every == 0:
            gc.collect()
        every = self.hparams.get("log_image_every_n_steps", 0)
        if (self.is_image and every > 0 and self.global_step % every == 0 and self.image_dir
                and self.global_rank == 0):
            self.save_training_images(batch, f"step_{self.global_step}.png")

    @torch.no_grad()
    def save_training_images(self, batch, name, count=8):
        """Denoising: noisy / denoised (without randomness) / clean grid of a few images at the trained
        level. Text-to-image: images generated from the captions above the real ones."""
        was_training = self.model.training
        self.model.eval()
        clean = batch["image"][:count]
        with self.seeded("valid", self.global_step):
            if self.is_text_to_image:
                caption = batch["caption"]
                caption = ({k: v[:count] for k, v in caption.items()} if isinstance(caption, dict)
                           else caption[:count])
                rows = [self.model.generate(caption), clean]
            else:
                t = self.model.noising.timestep_for(self.hparams.denoise_images_noise_level)
                noised = self.model.noising.noise(clean, t)
                denoised = self.model.sample(noised, t)
                rows = [noised, denoised, clean]
        self.log_picture("training_images", save_image_grid(os.path.join(self.image_dir, name), rows))
        self.model.train(was_training)

    def log_picture(self, key, path):
        """A saved grid also goes to W&B when it logs this run."""
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=key, images=[path], step=self.global_step)

    @property
    def answers_questions(self):
        """--execution_mode inference on text: generate answers (images and video evaluate their own way)."""
        return self.hparams.execution_mode == "inference" and not (self.is_image or self.is_video)

    def on_test_epoch_end(self):
        if self.answers_questions:
            self.log_dict({"test_em_score": self.exact_match.compute(), "test_f1_score": self.token_f1.compute()})
            self.exact_match.reset()
            self.token_f1.reset()
            return
        if self.rollout_metrics:
            self.log_dict({k: m.compute() for k, m in self.rollout_metrics.items()})
            for metric in self.rollout_metrics.values():
                metric.reset()
            return
        report = self.loss_report(self.test_metric, "test")
        if self.is_image and not self.is_text_to_image:
            report.update(self.image_report(self.test_images, "test"))
            report["test_forward_passes"] = torch.tensor(float(self.forward_passes))
            report["test_noisy_psnr"] = torch.tensor(psnr(self.noisy_test_images.compute()[0]))
            self.test_images.reset()
            self.noisy_test_images.reset()
        self.log_dict(report)
        self.test_metric.reset()

    def generation_step(self, batch, batch_idx):
        """--execution_mode inference: answer each prompt, write a JSON line, score EM and token F1."""
        hp = self.hparams
        sampling = SamplingConfig(hp.infer_temp, hp.infer_topp, hp.infer_topk or 0)  # None (published default): all
        eos = self.tokenizer.eos_token_id
        lengths = batch["prompt_lengths"]
        with self.seeded("test", batch_idx):
            for length in lengths.unique().tolist():  # the caches need prompts of equal length
                rows = (lengths == length).nonzero().flatten().tolist()
                prompt = batch["prompt_ids"][rows, :length]
                tokens, _ = generate(self.model, prompt, hp.infer_max_gen_len, sampling, eos_token_id=eos,
                                     inference=self.inference, context_length=hp.context_length + 1,
                                     compile=hp.infer_compile_decoding)
                for row, generated in zip(rows, tokens[:, length:].tolist()):
                    if eos in generated:
                        generated = generated[:generated.index(eos)]
                    text = self.tokenizer.decode(generated)
                    # the same extraction on both sides (GSM8K: the number after "####")
                    reference = reference_answer(hp.dataset_name, batch["answers"][row])
                    predicted = reference_answer(hp.dataset_name, text)
                    em, f1 = exact_match(predicted, reference), token_f1(predicted, reference)
                    self.exact_match.update(em)
                    self.token_f1.update(f1)
                    record = {"question": batch["prompts"][row],
                              "generation": (batch["prompts"][row] + text) if hp.infer_echo else text,
                              "reference": reference, "exact_match": em, "f1": f1}
                    self.results_file.write(json.dumps(record) + "\n")
        self.results_file.flush()

    def loss_report(self, metric, prefix):
        """<prefix>_loss (the training objective: mean over steps), per-step token-weighted losses,
        perplexities and energies (energy_step_i: before step i; energy_final: after thinking)."""
        step_losses, step_energies = map(torch.atleast_1d, metric.compute())  # 1 step comes back 0-d
        report = {f"{prefix}_loss": step_losses.mean().float(), f"{prefix}_final_step_loss": step_losses[-1].float()}
        is_text = not (self.is_image or self.is_video)
        if is_text:
            report[f"{prefix}_perplexity"] = step_losses[-1].exp().float()
        for i, loss in enumerate(step_losses):
            report[f"{prefix}_loss_step_{i + 1}"] = loss.float()
            if is_text:
                report[f"{prefix}_perplexity_step_{i + 1}"] = loss.exp().float()
        if self.hparams.model_name == "ebt":
            for i, energy in enumerate(step_energies[:-1]):
                report[f"{prefix}_energy_step_{i + 1}"] = energy.float()
            report[f"{prefix}_energy_final"] = step_energies[-1].float()
        return report

    # ------------------------------------------------------------------------------ optimisation

    def configure_optimizers(self):
        hp = self.hparams
        groups = build_param_groups(self.model, hp.peak_learning_rate, hp.weight_decay,
                                    hp.mcmc_step_size_lr_multiplier)
        implementation = adamw_implementation(self.model.parameters(), hp.get("float_precision", "32-true"),
                                              hp.get("distributed_strategy", "ddp"))
        optimizer = OPTIMIZERS[hp.get("optimizer", "adamw")](groups, betas=(hp.beta1, hp.beta2), eps=1e-8,
                                                               **implementation)
        scheduler = build_lr_scheduler(optimizer, hp.warm_up_steps, hp.max_scheduling_steps, hp.min_lr_scale)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_after_backward(self):
        if self.hparams.get("debug_unused_parameters"):
            unused = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
            print(f"step {self.global_step}: parameters without a gradient: {unused or 'none'}")
        if not self.hparams.log_gradients:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads:
            self.log("avg_gradient_norms", torch.stack([g.norm() for g in grads]).mean())
            if self.hparams.gradient_clip_val > 0:  # published heuristic: elements beyond the clip value
                beyond = sum(int((g.abs() > self.hparams.gradient_clip_val).sum()) for g in grads)
                self.log("pct_gradient_clipped", 100.0 * beyond / sum(g.numel() for g in grads))
