"""Video: next-frame prediction in a frozen encoder's feature space; with --infer_generate_video, rollouts from a few
real frames scored per generated frame, with real-vs-predicted strips."""
import os

import torch
import torchmetrics
from torch.utils.data import default_collate

from data.vid.splits import build_video_splits
from data.vid.transforms import denormalize_frames
from data.vid_latents import LatentVideoDataset
from inference.vid.generate_video import rollout, rollout_metrics, save_frame_strips
from model.registry import video_encoder_for
from model.vid.common import frame_features
from tasks.base import Task
from utils.reports import print_rollout

SPLIT_NAMES = ("train", "validation", "test")


class VideoTask(Task):
    restart_workers_each_epoch = True  # clips are drawn per epoch (set_epoch)
    loss_kind = "SmoothL1 to the next frame's features"
    curve_label = "SmoothL1 to the next frame's features"
    saves_pictures = True

    def __init__(self, hp):
        super().__init__(hp)
        self.rollout_metrics = {}  # --infer_generate_video: report key -> MeanMetric, made on the test's device

    @staticmethod
    def prepare(hp):
        return {"video_encoder": video_encoder_for(hp)}  # loaded once, for the model and the data

    def normalization(self, model):
        """How frames are normalised: the flags' choice, else what the model's frame encoder expects."""
        hp = self.hp
        return ("vae" if hp.vae_normalization else "custom" if hp.custom_image_normalization
                else model.encoders.input_normalization)

    def splits(self, model, stage):
        """Clips of context_length + 1 frames: decoded videos, or latents pre-encoded by utils/pre_encode_videos.py
        (--latents_dir/<split>)."""
        hp = self.hp
        if hp.latents_dir:
            return self._latent_splits(model, stage)
        return build_video_splits(
            hp.dataset_name, hp.context_length + 1, list(hp.image_dims), hp.seed, hp.dataset_dir or None,
            normalization=self.normalization(model), time_between_frames=hp.time_between_frames,
            sampling_rate=hp.sampling_rate, use_raw_framerate=hp.use_raw_framerate,
            no_randomness=hp.no_randomness_dataloader, validation_fraction=hp.validation_split_pct,
            stage="test" if stage == "test" else None)

    def _latent_splits(self, model, stage):
        hp, splits = self.hp, []
        needed = ["test"] if stage == "test" else ["train", "validation"]
        for split in SPLIT_NAMES:
            folder = os.path.join(hp.latents_dir, split)
            if split not in needed or not os.path.isdir(folder):
                splits.append(None)
                continue
            dataset = LatentVideoDataset(folder)
            dataset.check_encoder(model.encoders)
            if dataset.num_frames != hp.context_length + 1:
                raise ValueError(f"--latents_dir {folder} holds clips of {dataset.num_frames} frames; this run "
                                 f"needs {hp.context_length + 1} (--context_length + 1)")
            splits.append(dataset)
        missing = [name for name, dataset in zip(SPLIT_NAMES, splits) if dataset is None and name in needed]
        if missing:
            raise ValueError(f"--latents_dir {hp.latents_dir} has no {' / '.join(missing)} split; pre-encode it "
                             f"with python utils/pre_encode_videos.py --split {missing[0]} ...")
        return tuple(splits)

    def collate(self):
        return default_collate

    def describe_inputs(self, model):
        hp = self.hp
        return (f"clips of {hp.context_length + 1} frames of {hp.image_dims[0]}x{hp.image_dims[1]}, "
                f"{hp.backbone_type} features ({hp.feature_dim} per frame)")

    def test_step(self, module, batch, batch_idx):
        if not self.hp.infer_generate_video:
            return super().test_step(module, batch, batch_idx)
        self.rollout_step(module, batch, batch_idx)

    def rollout_step(self, module, batch, batch_idx):
        """Condition on the first frames, predict the rest one at a time (cached), score them against the true
        features and save real-vs-predicted strips (docs/method.md §8.4)."""
        hp, model = self.hp, module.model
        features = frame_features(batch, model.encoders)
        k, total = hp.infer_video_condition_frames, hp.infer_max_gen_len
        with module.seeded("test", batch_idx):
            predicted = rollout(model, features, k, total, module.inference)
        for name, value in rollout_metrics(predicted, features[:, k:total]).items():
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                self.rollout_metric(f"test_{name}" if len(values) == 1 else f"test_mse_frame_{k + i}",
                                    module.device).update(v, weight=features.shape[0])
        if self.due(module, batch_idx):
            encoder = model.encoders
            # back to frames, then to [0, 1] from the data's normalisation (aggregate + custom mixes two)
            normalization = self.normalization(model)
            if encoder.can_decode and not (hp.dataset_name == "aggregate" and normalization == "custom"):
                to_pixels = lambda f: denormalize_frames(encoder.decode(f), normalization,
                                                         hp.dataset_name)[0].clamp(0, 1)
                real = to_pixels(features[:1, :total])
                fake = to_pixels(torch.cat([features[:1, :k], predicted[:1]], 1))
                base = os.path.join(module.image_dir, f"rollout_batch_{batch_idx}")
                module.log_picture("rollouts", save_frame_strips(base + ".png", [real, fake], base + ".gif"))

    def rollout_metric(self, key, device):
        if key not in self.rollout_metrics:
            self.rollout_metrics[key] = torchmetrics.MeanMetric().to(device)
        return self.rollout_metrics[key]

    def print_test_report(self, report, title):
        if self.hp.infer_generate_video:
            return print_rollout(report, self.hp)
        super().print_test_report(report, title)

    def test_report(self, module):
        if not self.hp.infer_generate_video:
            return super().test_report(module)
        report = {key: metric.compute() for key, metric in self.rollout_metrics.items()}
        for metric in self.rollout_metrics.values():
            metric.reset()
        return report
