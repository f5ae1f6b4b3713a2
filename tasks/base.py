"""What a task is: the part of a run that depends on its modality.

The trainer (base_model_trainer.ModelTrainer) runs every task the same way: it builds the task's model through
model.registry, asks the task for its splits and collate function, calls the model's `forward_loss_wrapper`, and
hands each evaluation batch and epoch end to the task, which evaluates and reports in its own terms (perplexity,
PSNR, rollouts, answers). A task is an nn.Module only so that its metrics follow the trainer to its device and
are all-reduced across ranks; it has no parameters.
"""
import torch.nn as nn

from utils.reports import print_loss_table


class Task(nn.Module):
    reports_perplexity = False  # per-step perplexities next to the losses (text)
    restart_workers_each_epoch = False  # data drawn anew each epoch (set_epoch): loader workers must restart
    loss_kind = None  # what the console's loss tables measure; None: told by the report's keys
    saves_pictures = False  # grids or strips go to <run>/images
    answers_questions = False  # a test run writes generated answers (results.jsonl) instead of a test report
    final_test_title = None  # tasks that also test after training: the title of that table
    curve_label = "loss"  # the y axis of training_curves.png

    def __init__(self, hp):
        super().__init__()
        self.hp = hp

    @staticmethod
    def prepare(hp):
        """Complete the hyperparameters (a dict, changed in place) before they are saved; return the keyword
        arguments of model.registry.build_model (e.g. a frozen encoder built once)."""
        return {}

    def splits(self, model, stage):
        """(train, validation, test) datasets; those a stage does not need may be None."""
        raise NotImplementedError

    def collate(self):
        raise NotImplementedError

    def describe_inputs(self, model):
        """The inputs part of the run's start-up line."""
        raise NotImplementedError

    def startup_lines(self, model, device):
        """Lines the run prints at start-up after the model line (e.g. which vocabulary-loss path runs)."""
        return []

    def print_test_report(self, report, title):
        print_loss_table(report, "test", title, kind=self.loss_kind)

    def validation_step(self, module, batch, batch_idx, out):
        """After the trainer's own bookkeeping of a validation batch's outputs."""

    def validation_report(self, module):
        """Task metrics added to the validation report (then reset)."""
        return {}

    def test_step(self, module, batch, batch_idx):
        module.test_metric.update(module.forward_batch(batch, "test", batch_idx))

    def test_report(self, module):
        """The test report: by default the trainer's per-step losses."""
        return module.loss_report(module.test_metric, "test")

    def on_train_batch_end(self, module, batch):
        """After each training batch (e.g. pictures every --log_image_every_n_steps)."""

    def due(self, module, index):
        """Whether batch or step `index` saves a picture: every --log_image_every_n_steps, on rank 0, with a folder."""
        every = self.hp.log_image_every_n_steps
        return every > 0 and index % every == 0 and module.image_dir is not None and module.global_rank == 0
