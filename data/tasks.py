"""The data side of each task: its splits, how its batches are collated, and how its loaders behave.

One object per modality (text, image with text-to-image as its variant, video), chosen by `data_task(hp)`.
The trainer, the data-loader debugger and the experiments build data through these, not through each other.
A task's splits may need its model's frozen parts (the CLIP tokenizer of text-to-image, the frame encoder of
video), so `splits` takes the model.
"""
import os
from argparse import Namespace

from torch.utils.data import default_collate

from data.img.splits import build_image_splits, image_collate
from data.nlp import build_collator, build_splits, load_tokenizer
from data.vid.splits import build_video_splits
from data.vid_latents import LatentVideoDataset

SPLIT_NAMES = ("train", "validation", "test")


class TextData:
    """Token rows of context_length + 1 (pretraining corpora) or question/answer pairs (downstream sets)."""
    restart_workers_each_epoch = False

    def __init__(self, hp):
        self.hp = hp
        self.tokenizer = load_tokenizer(hp.tokenizer)

    def splits(self, model, stage):
        return build_splits(self.hp, self.tokenizer, stage)

    def collate(self):
        return build_collator(self.hp, self.tokenizer)


class ImageData:
    """Square images (with a caption for text-to-image), a test split held out like the validation one."""
    restart_workers_each_epoch = False

    def __init__(self, hp):
        self.hp = hp

    def splits(self, model, stage):
        hp = self.hp
        return build_image_splits(
            hp.dataset_name, hp.image_dims, hp.seed, hp.dataset_dir or None,
            clip_tokenizer=model.tokenizer if hp.image_task == "t2i" else None, use_rand_caption=hp.use_rand_caption,
            stage="test" if stage == "test" else None,  # training runs end with a test
            validation_fraction=hp.validation_split_pct, test_fraction=hp.validation_split_pct)

    def collate(self):
        return image_collate


class VideoData:
    """Clips of context_length + 1 frames: decoded videos, or latents pre-encoded by utils/pre_encode_videos.py."""
    restart_workers_each_epoch = True  # clips are drawn per epoch (set_epoch): workers must see the new epoch

    def __init__(self, hp):
        self.hp = hp

    def normalization(self, model):
        """How frames are normalised: the flags' choice, else what the model's frame encoder expects."""
        hp = self.hp
        return ("vae" if hp.vae_normalization else "custom" if hp.custom_image_normalization
                else model.encoders.input_normalization)

    def splits(self, model, stage):
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


DATA = {"NLP": TextData, "IMG": ImageData, "VID": VideoData}


def data_task(hp):
    """The data side of the task the hyperparameters (a dict or Namespace) choose."""
    hp = hp if isinstance(hp, Namespace) else Namespace(**hp)
    return DATA[hp.modality](hp)
