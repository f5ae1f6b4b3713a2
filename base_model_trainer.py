"""The LightningModule that trains and evaluates every model of every task the same way: data loaders, seeded
steps, token-weighted losses, optimisation and logging (docs/method.md §10.4); what depends on the modality is its
task's (tasks/)."""
import contextlib
import gc
from argparse import Namespace

import lightning as L
import torch
import torchmetrics
from torch.utils.data import DataLoader

from data.samplers import EvaluationShardSampler, ResumableBatchSampler
from model.config import InferenceConfig
from model.registry import build_model
from tasks import task_class
from utils.optimization import OPTIMIZERS, adamw_implementation, build_lr_scheduler, build_param_groups
from utils import sharding


# a loss or energy beyond this has run away: far above what a working run logs (cross-entropies of tens at an
# untrained start, pixel MSEs about 1), while float32 still represents it and its gradients
DIVERGED_ABOVE = 1e15


class TrainingDiverged(RuntimeError):
    """The loss, an energy or the weights stopped being finite numbers (or ran away): training stops."""


def divergence(loss, energies=None, alpha=None):
    """Why this training step has diverged (a sentence naming what to lower), or None."""
    def bad(t):
        return t is not None and not bool(torch.isfinite(t).all() and (t.abs() <= DIVERGED_ABOVE).all())

    if bad(alpha):
        return (f"alpha, the learned step size, ran away ({float(alpha):.3g}): lower --mcmc_step_size_lr_multiplier "
                f"or --peak_learning_rate")
    if bad(energies):
        detail = ", ".join(f"{float(e):.3g}" for e in energies)
        return (f"the energy ran away (each step's: {detail}; alpha {float(alpha):.3g}): lower --mcmc_step_size or "
                f"--peak_learning_rate")
    if bad(loss):
        return f"the loss is {float(loss):.3g}: lower --peak_learning_rate (or --gradient_clip_val)"
    return None


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


class ModelTrainer(L.LightningModule):
    """Owns the datasets and splits, dataloaders, the model, the optimizer and the LR schedule."""

    def __init__(self, hparams):
        super().__init__()
        hp = vars(hparams) if isinstance(hparams, Namespace) else dict(hparams)
        task = task_class(hp)
        model_parts = task.prepare(hp)  # e.g. the frozen video encoder, built once for the model and the data
        self.save_hyperparameters(hp)
        self.model = build_model(self.hparams, **model_parts)
        self.task = task(Namespace(**self.hparams))
        is_ebt = self.model.is_ebt
        self.inference = InferenceConfig.from_hparams(hp) if is_ebt and hp.get("infer_ebt_advanced") else None
        num_steps = self.model.num_evaluation_steps() if is_ebt else 1
        self.valid_metric = TokenWeightedLoss(num_steps)
        self.test_metric = TokenWeightedLoss(self.model.num_inference_steps(self.inference) if self.inference
                                             else num_steps)
        self.flops_per_token = self.model.estimate_flops()
        self.image_dir = None  # set by train_model.py for tasks that save pictures
        self.results_file = None  # opened by train_model.py for --execution_mode inference
        self.train_dataset = self.valid_dataset = self.test_dataset = None
        self._data_ready = False
        self.replicated_parameters = []  # under FSDP: the parameters every rank keeps whole

    def configure_model(self):
        """--distributed_strategy fsdp: shard the model over the ranks (once; Lightning calls this per stage)."""
        if self.hparams.get("distributed_strategy") == "fsdp" and not sharding.is_sharded(self.model):
            self.replicated_parameters = sharding.shard_model(self.model, self.device_mesh["data_parallel"])

    @property
    def tokenizer(self):
        """The text task's tokenizer (None for other tasks)."""
        return getattr(self.task, "tokenizer", None)

    # ------------------------------------------------------------------------------ data

    def setup(self, stage):
        if self._data_ready:  # built once, also when train_model.py builds it before Lightning
            return
        self.train_dataset, self.valid_dataset, self.test_dataset = self.task.splits(self.model, stage)
        self._data_ready = True

    def _loader_kwargs(self):
        workers = self.hparams.num_workers
        return dict(collate_fn=self.task.collate(), num_workers=workers,
                    persistent_workers=workers > 0 and not self.task.restart_workers_each_epoch,
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
        sampler = EvaluationShardSampler(len(dataset), self.global_rank, self.trainer.world_size)
        return DataLoader(dataset, batch_size=self.hparams.batch_size_per_device, sampler=sampler,
                          **self._loader_kwargs())

    def val_dataloader(self):
        return self._evaluation_loader(self.valid_dataset)

    def test_dataloader(self):
        return self._evaluation_loader(self.test_dataset)

    def on_train_end(self):
        if self.trainer.world_size > 1:  # replicas (all of DDP's, FSDP's unsharded) must end identical
            checksum = sum((p.detach().double().sum() for p in self.model.parameters()
                            if not isinstance(p, sharding.DTensor)), torch.zeros((), dtype=torch.float64))
            gathered = self.all_gather(checksum)
            if not torch.allclose(gathered, gathered[0]):
                raise RuntimeError(f"DDP ranks ended with different parameters: checksums {gathered.tolist()}")
            if self.global_rank == 0:
                print(f"parameters identical on {self.trainer.world_size} ranks")

    def stop_if_diverged(self, problem, when="training"):
        """Every rank stops together (one rank alone would leave the others waiting), before the step's update."""
        if self.trainer.strategy.reduce_boolean_decision(problem is not None, all=False):
            raise TrainingDiverged(f"{when} diverged at step {self.global_step}: "
                                   f"{problem or 'another rank found a non-finite loss or energy'}")

    def on_save_checkpoint(self, checkpoint):
        # a checkpoint never holds weights that are not finite numbers: the last good one stays
        finite = all(bool(torch.isfinite(sharding.local(p)).all()) for p in self.model.parameters())
        self.stop_if_diverged(None if finite else "the weights are no longer finite numbers: lower "
                              "--peak_learning_rate (or --gradient_clip_val)", "training")
        # batches of this epoch already fetched for training (a save inside on_train_batch_end has not
        # marked the current one completed yet, Lightning finishes that on restart)
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        checkpoint["train_data_position"] = (self.current_epoch, progress.ready)

    def on_load_checkpoint(self, checkpoint):
        self._resume_position = checkpoint.get("train_data_position")

    # ------------------------------------------------------------------------------ steps

    def forward_batch(self, batch, phase, step):
        """The model's loss and logs for one batch, with the randomness of (phase, step)."""
        # the energy after thinking costs one more forward: every evaluation batch, every logged training step
        extra = {}
        if self.model.is_ebt:
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
        out = self.forward_batch(batch, "train", self.global_step * self.trainer.accumulate_grad_batches + batch_idx)
        self.stop_if_diverged(divergence(out["loss"].detach(), out.get("step_energies"),
                                         self.model.alpha.detach() if self.model.is_ebt else None))
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
        out = self.forward_batch(batch, "valid", batch_idx)
        self.valid_metric.update(out)
        self.task.validation_step(self, batch, batch_idx, out)

    def on_validation_epoch_end(self):
        report = {**self.loss_report(self.valid_metric, "valid"), **self.task.validation_report(self)}
        self.log("valid_loss", report.pop("valid_loss"), prog_bar=True)
        self.log_dict(report)
        self.valid_metric.reset()

    def on_test_epoch_start(self):
        if sharding.is_sharded(self.model):  # the test's decoders use the model piece by piece
            self._gathered = sharding.gathered(self.model)
            self._gathered.__enter__()

    def test_step(self, batch, batch_idx):
        self.task.test_step(self, batch, batch_idx)

    def on_test_epoch_end(self):
        self.log_dict(self.task.test_report(self))
        self.test_metric.reset()
        if getattr(self, "_gathered", None) is not None:
            self._gathered.__exit__(None, None, None)
            self._gathered = None

    def on_train_batch_end(self, outputs, batch, batch_idx):
        every = self.hparams.get("manual_gc_collect_every_n_steps", -1)
        if every > 0 and self.global_step % every == 0:
            gc.collect()
        self.task.on_train_batch_end(self, batch)

    def log_picture(self, key, path):
        """A saved grid also goes to W&B when it logs this run."""
        for logger in self.loggers:
            if hasattr(logger, "log_image"):  # loggers differ: only W&B's takes pictures
                logger.log_image(key=key, images=[path], step=self.global_step)

    def loss_report(self, metric, prefix):
        """<prefix>_loss (the training objective: mean over steps), per-step token-weighted losses,
        perplexities and energies (energy_step_i: before step i; energy_final: after thinking)."""
        step_losses, step_energies = map(torch.atleast_1d, metric.compute())  # 1 step comes back 0-d
        report = {f"{prefix}_loss": step_losses.mean().float(), f"{prefix}_final_step_loss": step_losses[-1].float()}
        is_text = self.task.reports_perplexity
        if is_text:
            report[f"{prefix}_perplexity"] = step_losses[-1].exp().float()
        for i, loss in enumerate(step_losses):
            report[f"{prefix}_loss_step_{i + 1}"] = loss.float()
            if is_text:
                report[f"{prefix}_perplexity_step_{i + 1}"] = loss.exp().float()
        if self.model.is_ebt:
            for i, energy in enumerate(step_energies[:-1]):
                report[f"{prefix}_energy_step_{i + 1}"] = energy.float()
            report[f"{prefix}_energy_final"] = step_energies[-1].float()
        return report

    # ------------------------------------------------------------------------------ optimisation

    def configure_optimizers(self):
        hp = self.hparams
        groups = build_param_groups(self.model, hp.peak_learning_rate, hp.weight_decay,
                                    hp.mcmc_step_size_lr_multiplier, sharded=sharding.is_sharded(self.model))
        implementation = adamw_implementation(self.model.parameters(), hp.get("float_precision", "32-true"),
                                              hp.get("distributed_strategy", "ddp"))
        optimizer = OPTIMIZERS[hp.get("optimizer", "adamw")](groups, betas=(hp.beta1, hp.beta2), eps=1e-8,
                                                               **implementation)
        scheduler = build_lr_scheduler(optimizer, hp.warm_up_steps, hp.max_scheduling_steps, hp.min_lr_scale)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_after_backward(self):
        if sharding.is_sharded(self.model):
            sharding.average_replicated_gradients(self.replicated_parameters)
            sharding.reshard(self.model)
        if self.hparams.get("debug_unused_parameters"):
            unused = [n for n, p in self.model.named_parameters() if p.requires_grad and p.grad is None]
            print(f"step {self.global_step}: parameters without a gradient: {unused or 'none'}")
        if not self.hparams.log_gradients:
            return
        grads = [sharding.full_tensor(p.grad) for p in self.model.parameters() if p.grad is not None]
        if grads:
            self.log("avg_gradient_norms", torch.stack([g.norm() for g in grads]).mean())
            if self.hparams.gradient_clip_val > 0:  # published heuristic: elements beyond the clip value
                beyond = sum(int((g.abs() > self.hparams.gradient_clip_val).sum()) for g in grads)
                self.log("pct_gradient_clipped", 100.0 * beyond / sum(g.numel() for g in grads))

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if gradient_clip_val and sharding.is_sharded(self.model):  # torch's clip cannot mix shards and whole ones
            sharding.clip_gradient_norm_([p for g in optimizer.param_groups for p in g["params"]], gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
