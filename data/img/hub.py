"""The paper's hub image datasets (docs/method.md §9.3): COCO-Text (coco_tiny), COCO 2014 (coco_medium), ImageNet-1k.

Each one loads from the Hugging Face hub or, when `dataset_dir` holds a local copy, from that copy:
  - a `save_to_disk` folder of a DatasetDict (its splits are used by name) or of one Dataset (split by seed);
  - .parquet / .jsonl / .json files in `dataset_dir` or `dataset_dir/data` (the hub's layout). Files named
    `train-*`, `validation-*` (or `val-*`, `valid-*`) and `test-*` give those splits; files without such a prefix
    form one pool that is split by seed. In json files the image may be a path, relative to `dataset_dir`.
A `dataset_dir` with none of these is used as the hub download cache, as the published code does.

Schemas: COCO-Text (`image`, `caption`: list of strings; splits train / validation) was read from its hub card;
COCO 2014 (`image`, `caption`: list of strings, plus id/width/height/license/flickr_url; splits train /
validation / test) from rows of its hub viewer; ImageNet-1k (`image`, `label`: class 0-999, -1 on the test split;
splits train / validation / test) from its hub page and discussions. Local copies may also name the image column
`img`/`jpg`/`png`, the caption column `captions`/`sentences`/`text` (strings, lists of strings, or lists of
{"raw"|"text": ...}), and the label column `labels`. A row without captions gets the caption "" (COCO 2014's test
images have no public captions; whether the hub copy stores None or [] there is not confirmed: both work).
"""

import io
import os
import re
from dataclasses import dataclass, field

import torch
from datasets import Dataset as HFDataset
from datasets import load_dataset, load_from_disk
from PIL import Image
from torch.utils.data import Dataset

from .datasets import held_out_count, split_indices
from .transforms import image_transform

CLIP_MAX_TOKENS = 77  # CLIP text encoders' context length
IMAGE_COLUMNS = ("image", "img", "jpg", "png")
CAPTION_COLUMNS = ("caption", "captions", "sentences", "text")
LABEL_COLUMNS = ("label", "labels")
SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "val"), "test": ("test",)}
SPLIT_FILE = re.compile(r"^(train|validation|valid|val|test)[-_.]")


@dataclass(frozen=True)
class HubImageDataset:
    """One hub dataset: where it lives and which of its splits serve as our train / validation / test."""
    repo: str
    splits: dict  # our split -> hub split; None: carved by seed out of the hub's train split
    captions: bool = False
    labels: bool = False
    load_options: dict = field(default_factory=dict)  # extra load_dataset arguments for the hub download
    parallel_prepare: bool = False  # prepare with num_proc = min(12, CPUs), as the published code does


HUB_IMAGE_DATASETS = {
    # The published code fits coco_tiny on a seeded split of the hub's train split and tests on its validation.
    "coco_tiny": HubImageDataset("howard-hou/COCO-Text", {"train": "train", "validation": None, "test": "validation"},
                                 captions=True),
    "coco_medium": HubImageDataset("AbdoTW/COCO_2014", {"train": "train", "validation": "validation", "test": "test"},
                                   captions=True),
    "imagenet": HubImageDataset("ILSVRC/imagenet-1k", {"train": "train", "validation": "validation", "test": "test"},
                                labels=True, load_options={"verification_mode": "no_checks"}, parallel_prepare=True),
}


class HubImages(Dataset):
    """Rows of a hub dataset as {"image": (3, S, S) in [-1, 1]} plus "caption" and/or "label".

    "caption": with a CLIP tokenizer, {"input_ids", "attention_mask"}: LongTensors (77,) padded/truncated to 77
    tokens; without one, the caption string. The first caption of a row, or with `use_rand_caption` one drawn with
    torch's global RNG, which DataLoader seeds per worker and per epoch (a new caption each epoch). "label": a 0-d
    LongTensor.
    """

    def __init__(self, rows, image_size, root=None, clip_tokenizer=None, use_rand_caption=False,
                 want_captions=False, want_labels=False, name="dataset"):
        self.rows, self.image_size, self.root = rows, image_size, root
        self.clip_tokenizer, self.use_rand_caption = clip_tokenizer, use_rand_caption
        columns = rows.column_names
        self.image_column = find_column(columns, IMAGE_COLUMNS, name, "image")
        self.caption_column = find_column(columns, CAPTION_COLUMNS, name, "caption") if want_captions else None
        self.label_column = find_column(columns, LABEL_COLUMNS, name, "label") if want_labels else None

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        row = self.rows[int(index)]
        item = {"image": image_transform(as_pil(row[self.image_column], self.root), self.image_size)}
        if self.caption_column is not None:
            item["caption"] = self.encode(self.pick(caption_list(row[self.caption_column])))
        if self.label_column is not None:
            item["label"] = torch.tensor(int(row[self.label_column]))
        return item

    def pick(self, captions):
        if not captions:
            return ""
        if self.use_rand_caption:
            return captions[int(torch.randint(len(captions), ()))]
        return captions[0]

    def encode(self, caption):
        if self.clip_tokenizer is None:
            return caption
        tokens = self.clip_tokenizer(caption, padding="max_length", truncation=True, max_length=CLIP_MAX_TOKENS,
                                     return_tensors="pt")
        return {"input_ids": tokens["input_ids"][0], "attention_mask": tokens["attention_mask"][0]}  # (77,) each


def find_column(columns, candidates, name, what):
    """The first of `candidates` among `columns`, else a ValueError that lists both."""
    for column in candidates:
        if column in columns:
            return column
    raise ValueError(f"--dataset_name {name}: the rows have no {what} column (looked for {', '.join(candidates)}; "
                     f"found {', '.join(columns)}); check --dataset_dir")


def as_pil(value, root):
    """A decoded image, an undecoded {"bytes", "path"} dict, or a file path (relative to `root`) as a PIL image."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            return Image.open(io.BytesIO(value["bytes"]))
        value = value.get("path")
    if isinstance(value, str) and value:
        return Image.open(value if os.path.isabs(value) or root is None else os.path.join(root, value))
    raise ValueError(f"cannot read an image from {type(value).__name__} {str(value)[:80]!r}")


def caption_list(value):
    """All captions of a row as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # e.g. {"text": [...], "id": [...]}
        return caption_list(value.get("raw", value.get("text")))
    return [text for entry in value for text in caption_list(entry)]


# ----------------------------------------------------------------------------------------------------------------
# Where the rows come from: a local copy in dataset_dir, or the hub

def local_copy(directory):
    """A local copy in `directory`: {split name: rows}, one rows object (to split by seed), or None if none."""
    if os.path.exists(os.path.join(directory, "dataset_dict.json")):
        return dict(load_from_disk(directory))
    if os.path.exists(os.path.join(directory, "state.json")):
        return load_from_disk(directory)
    for builder, extensions in (("parquet", (".parquet",)), ("json", (".jsonl", ".json", ".jsonl.gz", ".json.gz"))):
        files = sorted(os.path.join(folder, f) for folder in (directory, os.path.join(directory, "data"))
                       if os.path.isdir(folder) for f in os.listdir(folder) if f.endswith(extensions))
        if not files:
            continue
        by_split = {}
        for path in files:
            match = SPLIT_FILE.match(os.path.basename(path))
            by_split.setdefault(match.group(1) if match else None, []).append(path)
        if None not in by_split:
            return dict(load_dataset(builder, data_files=by_split))
        if len(by_split) > 1:
            raise ValueError(f"--dataset_dir {directory}: some {builder} files start with a split name (train-, "
                             f"validation-, test-) and some do not ({os.path.basename(by_split[None][0])}); "
                             "name all of them by split, or none (then they are split by seed)")
        return load_dataset(builder, data_files=files, split="train")
    return None


def local_split(splits, split, name, directory):
    """The rows of hub split `split` in a local {split name: rows} copy, accepting the usual aliases of each name."""
    for alias in SPLIT_ALIASES[split]:
        if alias in splits:
            return splits[alias]
    raise ValueError(f"--dataset_name {name}: the local copy in --dataset_dir {directory} has no '{split}' split "
                     f"(it has {', '.join(sorted(splits))}); save it with that split, or save one Dataset to split "
                     "by seed")


def hub_split(spec, hub_split_name, name, dataset_dir):
    """One split of `spec.repo` from the hub (cached in dataset_dir if given), or a ValueError saying what to do."""
    options = dict(spec.load_options)
    if spec.parallel_prepare:
        options["num_proc"] = min(12, os.cpu_count() or 1)
    try:
        return load_dataset(spec.repo, split=hub_split_name, cache_dir=dataset_dir or None, **options)
    except Exception as error:  # offline, gated, missing, script-based: hub errors come in many types
        gated = " (gated: accept its terms on the hub, then `hf auth login` or set HF_TOKEN)" if spec.labels else ""
        raise ValueError(
            f"--dataset_name {name}: cannot load split '{hub_split_name}' of {spec.repo} from the Hugging Face hub"
            f"{gated}: {type(error).__name__}: {error}. Without the hub, pass --dataset_dir with a local copy: a "
            f"save_to_disk folder or train-*/validation-*/test-* parquet or json files with the same columns "
            f"(an image column{' and a caption column' if spec.captions else ''}"
            f"{' and a label column' if spec.labels else ''})") from error


def hub_image_splits(name, image_size, seed, dataset_dir=None, clip_tokenizer=None, use_rand_caption=False,
                     validation_fraction=0.05, test_fraction=0.05, wanted=("train", "validation", "test")):
    """(train, validation, test) HubImages of hub dataset `name`; a split not in `wanted` is None (never loaded)."""
    spec = HUB_IMAGE_DATASETS[name]
    local = None
    if dataset_dir:
        if not os.path.isdir(dataset_dir):
            raise ValueError(f"--dataset_name {name}: --dataset_dir {dataset_dir} does not exist; pass a local copy "
                             f"of {spec.repo} (a save_to_disk folder or parquet/json files), or an existing folder "
                             f"to use as the hub download cache, or leave --dataset_dir empty to download {spec.repo}")
        local = local_copy(dataset_dir)

    if isinstance(local, HFDataset):  # one pool of rows: our three splits by seed
        n = len(local)
        num_validation, num_test = held_out_count(n, validation_fraction), held_out_count(n, test_fraction)
        if n < num_validation + num_test + 1:
            raise ValueError(f"--dataset_name {name}: the local copy in --dataset_dir {dataset_dir} has {n} row(s); "
                             f"need at least {num_validation + num_test + 1} to split into train/validation/test")
        rows = dict(zip(("train", "validation", "test"),
                        (local.select(part.tolist()) for part in split_indices(n, num_validation, num_test, seed))))
    else:
        def load(hub_name):
            if isinstance(local, dict):
                return local_split(local, hub_name, name, dataset_dir)
            return hub_split(spec, hub_name, name, dataset_dir)

        rows = {}
        carved = [split for split, hub in spec.splits.items() if hub is None]  # out of the hub's train split
        if carved and {"train", *carved} & set(wanted):  # train must lose the carved rows even when alone
            pool = load("train")
            n = len(pool)
            keep, held, _ = split_indices(n, held_out_count(n, validation_fraction), 0, seed)
            rows["train"], rows[carved[0]] = pool.select(keep.tolist()), pool.select(held.tolist())
        for split in wanted:
            if split not in rows:
                rows[split] = load(spec.splits[split])

    root = dataset_dir if local is not None else None
    return tuple(HubImages(rows[split], image_size, root, clip_tokenizer, use_rand_caption, spec.captions,
                           spec.labels, name) if split in wanted else None
                 for split in ("train", "validation", "test"))
