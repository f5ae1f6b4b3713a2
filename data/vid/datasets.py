"""Video file datasets: clips sampled from files on disk, in the published loaders' layouts (docs/method.md §9.4).

Every item is {"video": FloatTensor (C, 3, H, W)}, C = num_frames. Layouts under --dataset_dir:

  k400 (kinetics400)   annotations/{train,val,test}.csv with columns youtube_id, time_start, time_end (others,
                       e.g. label, are ignored); videos {train,val,test}/{youtube_id}_{start:06}_{end:06}.mp4
  something (smth,     labels/{train,validation,test}.json, lists of {"id": ...}; videos
    ssv2)              20bn-something-something-v2/{id}.webm
  ucf101               ucfTrainTestlist/trainlist01.txt ("Class/v_Class_gXX_cYY.avi label" lines; train, and a
                       seeded validation carve-out) and testlist01.txt (test); videos UCF-101/Class/v_...avi, the
                       folder the official UCF101.rar extracts to. A listed path that differs from the file on disk
                       only in letter case is matched (case-sensitive file systems)
  aggregate            k400/ and ssv2/ (or kinetics400/, something-something-v2/) side by side, each in its own
                       layout above; K400 then SSv2, each split from its own annotation files
  video_folder         every .mp4/.webm/.avi/.mov/.mkv below --dataset_dir (recursive), split by seed

Unreadable files: a file that neither decord nor PyAV can decode (data/vid/decoding.py) is skipped: its item is
replaced by the next readable file of the split, so an epoch never ends early. The file is logged once and its
path, relative to --dataset_dir, appended to the corrupt-file list (default <dataset_dir>/corrupt_files.txt;
utils/find_corrupt_files.py writes the same list ahead of time). Files already in the list are left out when a
dataset is built. Appends are locked, so DataLoader workers and DDP ranks sharing the list write and log each file
once; when the list cannot be written (a read-only dataset folder), the skipped files are only logged.
Missing files (e.g. YouTube clips that could not be downloaded) are treated the same way.
"""

import csv
import json
import logging
import os

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from data.readable import read_first_readable

from .decoding import CorruptVideo, VideoFile
from .sampling import sample_frame_indices
from .transforms import frame_size, frames_to_tensor, normalization_steps

try:
    import fcntl
except ImportError:  # Windows: appends are not locked
    fcntl = None

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv")
CORRUPT_LIST_NAME = "corrupt_files.txt"
EVAL_SEED = 20250702  # validation/test clips are the same for every --seed, so runs compare directly


# ----------------------------------------------------------------------------------------------------------------
# the corrupt-file list

class CorruptFileList:
    """A text file of unreadable videos, one path per line, relative to `root` (absolute paths are accepted too)."""

    def __init__(self, path, root):
        self.path, self.root = str(path), os.path.abspath(root)
        self.unwritable_logged = False

    def relative(self, path):
        """`path` as written in the list: relative to the root, with '/' separators (relative paths are kept)."""
        path = str(path)
        if os.path.isabs(path):
            path = os.path.relpath(path, self.root)
        return os.path.normpath(path).replace(os.sep, "/")

    def entries(self):
        """The relative paths in the list now (empty if the file does not exist)."""
        if not os.path.isfile(self.path):
            return set()
        with open(self.path) as f:
            return {self.relative(line.strip()) for line in f if line.strip()}

    def add(self, path):
        """Append `path` unless it is listed already; True if this call added it. Locked against other processes."""
        entry = self.relative(path)
        try:
            with open(self.path, "a+") as f:  # "a+": reads from anywhere, writes always go to the end
                if fcntl is not None:
                    fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
                f.seek(0)
                text = f.read()
                if entry in {self.relative(line.strip()) for line in text.splitlines() if line.strip()}:
                    return False
                f.write(("\n" if text and not text.endswith("\n") else "") + entry + "\n")
                return True
        except OSError as error:
            if not self.unwritable_logged:
                logger.warning("cannot write the corrupt-file list %s (%s); unreadable videos are skipped and "
                               "logged but not recorded", self.path, error)
                self.unwritable_logged = True
            return True


# ----------------------------------------------------------------------------------------------------------------
# clips of video files

class VideoClips(Dataset):
    """Clips of `sampling["num_frames"]` frames from video files -> {"video": (C, 3, H, W)} float32.

    sampling: keyword arguments of sample_frame_indices (num_frames, time_between_frames, sampling_rate,
    use_raw_framerate, no_randomness). Frame indices are drawn from a generator keyed by (seed, epoch, index) for
    the train split (`set_epoch` moves to other clips of the same videos) and by index alone for validation/test.
    `statistics_name` names the dataset whose statistics --custom_image_normalization uses.
    """

    def __init__(self, name, paths, sampling, image_size, normalization="imagenet", statistics_name=None, seed=0,
                 train=False, corrupt_list=None, backend="auto"):
        normalization_steps(normalization, statistics_name)  # an unknown combination fails at start-up
        self.name, self.sampling = name, dict(sampling)
        self.size, self.normalization, self.statistics_name = frame_size(image_size), normalization, statistics_name
        self.train, self.seed, self.epoch = train, seed & 0xFFFFFFFF, 0
        self.corrupt_list, self.backend = corrupt_list, backend
        listed = corrupt_list.entries() if corrupt_list is not None else set()
        self.paths = [p for p in paths if corrupt_list is None or corrupt_list.relative(p) not in listed]
        self.excluded = len(paths) - len(self.paths)
        if not self.paths:
            where = f"; all are in the corrupt-file list {corrupt_list.path}" if self.excluded else ""
            raise ValueError(f"{name}: no readable videos ({len(paths)} in this split{where}); add videos to "
                             "--dataset_dir or change the split (--seed, --validation_split_pct)")
        self.unreadable = set()  # paths found unreadable by this copy of the dataset (one per DataLoader worker)

    def __len__(self):
        return len(self.paths)

    def set_epoch(self, epoch):
        """Draw other clips from the training videos in `epoch` (validation/test clips never change)."""
        self.epoch = epoch

    def generator(self, index):
        key = [self.seed, self.epoch, index] if self.train else [EVAL_SEED, index]
        return np.random.default_rng(key)

    def load(self, path, index):
        with VideoFile(path, self.backend) as video:
            info = video.info
            indices = sample_frame_indices(info.frame_count, info.fps, duration=info.duration,
                                           rng=self.generator(index), **self.sampling)
            frames = video.frames(indices)  # (C, H0, W0, 3) uint8
        return frames_to_tensor(frames, self.size, self.normalization, self.statistics_name)

    def skip(self, path, error):
        self.unreadable.add(path)
        newly_listed = self.corrupt_list.add(path) if self.corrupt_list is not None else True
        if newly_listed:  # once per file, also across workers sharing the list
            logger.warning("%s: skipping unreadable video %s (%s)", self.name, path, error.reason)

    def __getitem__(self, index):
        return read_first_readable(self.paths, index, self.unreadable, lambda path: {"video": self.load(path, index)},
                                   CorruptVideo, self.skip, self.name, "videos")


class VideoConcat(ConcatDataset):
    """ConcatDataset of VideoClips that passes set_epoch on (aggregate = K400 + SSv2)."""

    def set_epoch(self, epoch):
        for part in self.datasets:
            part.set_epoch(epoch)


# ----------------------------------------------------------------------------------------------------------------
# folder layouts: each returns the video paths of one split ("train", "validation" or "test")

def require_dir(dataset_dir, name, layout):
    """dataset_dir as an absolute path, or a ValueError that names the expected layout."""
    if not dataset_dir:
        raise ValueError(f"--dataset_name {name} needs --dataset_dir, a folder laid out as: {layout}")
    if not os.path.isdir(dataset_dir):
        raise ValueError(f"--dataset_dir {dataset_dir}: does not exist or is not a folder; --dataset_name {name} "
                         f"expects a folder laid out as: {layout}")
    return os.path.abspath(dataset_dir)


def require_path(path, dataset_dir, name, layout, kind="file"):
    exists = os.path.isfile(path) if kind == "file" else os.path.isdir(path)
    if not exists:
        raise ValueError(f"--dataset_name {name}: {kind} {path} not found; --dataset_dir {dataset_dir} must be laid "
                         f"out as: {layout}")
    return path


K400_LAYOUT = ("annotations/{train,val,test}.csv (columns youtube_id,time_start,time_end) and "
               "{train,val,test}/<youtube_id>_<time_start:06>_<time_end:06>.mp4 (the published default was "
               "/scratch/$USER/kinetics-dataset/k400/)")
K400_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def kinetics400_paths(dataset_dir, split):
    """Video paths of a Kinetics-400 split, one per annotation row, in the csv's order."""
    root = require_dir(dataset_dir, "k400", K400_LAYOUT)
    part = K400_SPLITS[split]
    csv_path = require_path(os.path.join(root, "annotations", f"{part}.csv"), root, "k400", K400_LAYOUT)
    require_path(os.path.join(root, part), root, "k400", K400_LAYOUT, kind="folder")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"youtube_id", "time_start", "time_end"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"--dataset_name k400: {csv_path} lacks the column(s) {', '.join(sorted(missing))}; "
                             f"expected {K400_LAYOUT}")
        return [os.path.join(root, part, f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_"
                                         f"{int(float(row['time_end'])):06d}.mp4") for row in reader]


SSV2_LAYOUT = ("labels/{train,validation,test}.json (lists of {\"id\": ...}) and 20bn-something-something-v2/<id>"
               ".webm (the published default was /scratch/$USER/something-something-v2/)")
SSV2_VIDEOS = "20bn-something-something-v2"


def something_paths(dataset_dir, split):
    """Video paths of a Something-Something v2 split, one per json entry, in the file's order."""
    root = require_dir(dataset_dir, "something", SSV2_LAYOUT)
    json_path = require_path(os.path.join(root, "labels", f"{split}.json"), root, "something", SSV2_LAYOUT)
    videos = require_path(os.path.join(root, SSV2_VIDEOS), root, "something", SSV2_LAYOUT, kind="folder")
    with open(json_path) as f:
        entries = json.load(f)
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise ValueError(f"--dataset_name something: {json_path} must be a list of objects with an \"id\"; "
                         f"expected {SSV2_LAYOUT}")
    return [os.path.join(videos, f"{entry['id']}.webm") for entry in entries]


UCF101_LAYOUT = ("ucfTrainTestlist/trainlist01.txt and testlist01.txt (from UCF101TrainTestSplits-RecognitionTask"
                 ".zip) and UCF-101/<Class>/v_<Class>_gXX_cYY.avi (from UCF101.rar)")


def read_ucf101_list(path):
    """Relative video paths of a UCF-101 list file ('Class/v_Class_g08_c01.avi [label]' lines, CRLF or LF)."""
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def ucf101_paths(dataset_dir, split, seed, validation_fraction=0.1):
    """Video paths of a UCF-101 split: train/validation are a seeded cut of trainlist01, test is testlist01."""
    root = require_dir(dataset_dir, "ucf101", UCF101_LAYOUT)
    lists = require_path(os.path.join(root, "ucfTrainTestlist"), root, "ucf101", UCF101_LAYOUT, kind="folder")
    videos = require_path(os.path.join(root, "UCF-101"), root, "ucf101", UCF101_LAYOUT, kind="folder")
    list_name = "testlist01.txt" if split == "test" else "trainlist01.txt"
    entries = read_ucf101_list(require_path(os.path.join(lists, list_name), root, "ucf101", UCF101_LAYOUT))
    if split != "test":
        if len(entries) < 2:
            raise ValueError(f"--dataset_name ucf101: {list_name} lists {len(entries)} video(s); need at least 2 "
                             "to carve out a validation set")
        train, validation = seeded_split(len(entries), [held_out_count(len(entries), validation_fraction)], seed)
        entries = [entries[i] for i in (train if split == "train" else validation)]
    on_disk = case_insensitive_index(videos)
    return [os.path.join(videos, on_disk.get(entry.lower(), entry)) for entry in entries]


def case_insensitive_index(folder):
    """{lower-cased relative path: relative path on disk} of the files below `folder`."""
    index = {}
    for directory, _, names in os.walk(folder, followlinks=True):
        for name in names:
            relative = os.path.relpath(os.path.join(directory, name), folder).replace(os.sep, "/")
            index.setdefault(relative.lower(), relative)
    return index


VIDEO_FOLDER_LAYOUT = f"any folder holding {'/'.join(VIDEO_EXTENSIONS)} videos (searched recursively)"


def find_videos(dataset_dir):
    """Sorted paths of the video files (VIDEO_EXTENSIONS, any case) below `dataset_dir`."""
    return sorted(os.path.join(directory, name) for directory, _, names in os.walk(dataset_dir, followlinks=True)
                  for name in names if name.lower().endswith(VIDEO_EXTENSIONS))


def video_folder_paths(dataset_dir, seed, validation_fraction=0.1, test_fraction=0.1):
    """(train, validation, test) path lists of the videos below `dataset_dir`, split by `seed`."""
    root = require_dir(dataset_dir, "video_folder", VIDEO_FOLDER_LAYOUT)
    paths = find_videos(root)
    n = len(paths)
    held_out = [held_out_count(n, validation_fraction), held_out_count(n, test_fraction)]
    if n < sum(held_out) + 1:
        raise ValueError(f"--dataset_dir {root}: has {n} video(s); --dataset_name video_folder needs at least "
                         f"{sum(held_out) + 1} (train + {held_out[0]} validation + {held_out[1]} test)")
    return tuple([paths[i] for i in part] for part in seeded_split(n, held_out, seed))


AGGREGATE_PARTS = {"k400": ("k400", "kinetics400"), "something": ("ssv2", "something-something-v2")}
AGGREGATE_LAYOUT = ("k400/ (or kinetics400/) laid out as " + K400_LAYOUT + "; and ssv2/ (or something-something-v2/)"
                    " laid out as " + SSV2_LAYOUT)


def aggregate_dirs(dataset_dir):
    """{"k400": folder, "something": folder} of the two datasets that aggregate concatenates."""
    root = require_dir(dataset_dir, "aggregate", AGGREGATE_LAYOUT)
    dirs = {}
    for part, names in AGGREGATE_PARTS.items():
        found = [os.path.join(root, name) for name in names if os.path.isdir(os.path.join(root, name))]
        if not found:
            raise ValueError(f"--dataset_name aggregate: --dataset_dir {root} has none of the folders "
                             f"{' / '.join(names)}; expected {AGGREGATE_LAYOUT}")
        dirs[part] = found[0]
    return dirs


LAYOUTS = {"video_folder": VIDEO_FOLDER_LAYOUT, "ucf101": UCF101_LAYOUT, "k400": K400_LAYOUT,
           "something": SSV2_LAYOUT, "aggregate": AGGREGATE_LAYOUT}


# ----------------------------------------------------------------------------------------------------------------

def held_out_count(n, fraction):
    """max(1, round(fraction * n)) items held out of n."""
    return max(1, round(fraction * n))


def seeded_split(n, held_out, seed):
    """A seeded permutation of range(n) cut into [rest, held_out[0], held_out[1], ...] index lists."""
    order = np.random.default_rng(seed & 0xFFFFFFFF).permutation(n).tolist()
    cuts = np.cumsum([n - sum(held_out), *held_out]).tolist()
    return [order[start:end] for start, end in zip([0, *cuts[:-1]], cuts)]
