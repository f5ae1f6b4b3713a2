"""Latent pre-encoding of video datasets: run the frozen frame encoder once, train on the stored features.

The published code encodes every clip with the VAE / DINOv2 at every step (docs/method.md §9.5); a store made here
replaces that work with a read. Layout of `out_dir`:

    index.json          {"format", "encoder", "feature_dim", "num_frames", "num_items", "shard_size", "dtype",
                         "dataset", "shards": [{"file", "num_items"}, ...], "complete"}
    shard_00000.pt      torch.save of one (N, C, F) tensor, N = shard_size (the last shard may be shorter)
    shard_00001.pt      ...

Shards are plain `torch.save` tensors, read back memory-mapped (`torch.load(mmap=True)`): opening one costs no
copy, and an item reads only its own (C, F) rows. They hold float16 by default: half the disk of float32 and,
for unit-scale features (scaled VAE latents, DINO CLS, pixels in [-1, 1]), a rounding error of at most 2^-11
relative (about 5e-4 at magnitude 1), well under the noise of training. Pass dtype=torch.float32 for exact
features.

Resumable: each shard is written to a temporary file and moved into place with os.replace, then index.json is
rewritten the same way; a rerun continues after the last shard listed in the index. A store made with another
encoder, dataset description, frame count, shard size or dtype is never extended (ValueError).

Deterministic input is the caller's job: the dataset must give the same clip for the same index every time
(video datasets built with no_randomness=True: the first window of each clip, no random start). Pre-encoding
freezes the sampled clip: the random clip start of on-the-fly training is lost, each video contributes the
same frames every epoch.
"""
import json
import os
from collections import OrderedDict

import torch
from torch.utils.data import DataLoader, Dataset, Subset

INDEX = "index.json"
FORMAT = "ebt-video-latents-v1"
STORE_DTYPES = {"float16": torch.float16, "float32": torch.float32}
RERUN_HINT = "rerun the pre-encoding command (python utils/pre_encode_videos.py ...) with the same arguments"


def shard_file(number):
    return f"shard_{number:05d}.pt"


def _write_atomically(path, write):
    """write(temporary path) then os.replace: a reader never sees a half-written file, even after a crash."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_index(out_dir, index):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(index, f, indent=1)
    _write_atomically(os.path.join(out_dir, INDEX), write)


def read_index(out_dir):
    """index.json of a store, or None when there is none."""
    path = os.path.join(out_dir, INDEX)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _dtype_name(dtype):
    for name, value in STORE_DTYPES.items():
        if dtype in (name, value):
            return name
    raise ValueError(f"dtype {dtype!r}: latents are stored as one of {', '.join(STORE_DTYPES)}")


def _item_video(item, position):
    if not isinstance(item, dict) or "video" not in item:
        raise TypeError(f"dataset item {position} must be a dict with a 'video' tensor (C, 3, H, W); got "
                        f"{type(item).__name__}")
    return item["video"]


def _collate_videos(items):
    return torch.stack([_item_video(item, i) for i, item in enumerate(items)])  # (B, C, 3, H, W)


# ----------------------------------------------------------------------------- writing

def pre_encode(dataset, encoder, out_dir, description, shard_size=1024, batch_size=16, num_workers=0,
               dtype=torch.float16, progress=None, on_shard_written=None):
    """Encode every item of `dataset` ({"video": (C, 3, H, W)}) with the frozen `encoder` into shards in out_dir.

    description: JSON-serialisable account of the dataset (name, split, frames, size, normalisation, sampling...),
        stored and compared on resume. progress(n): called with the number of items encoded after each batch.
        on_shard_written(info): called after each shard is safely on disk with {"shard", "file", "num_items",
        "num_shards"}. Returns the index (a dict). Resumes an interrupted store; refuses to extend a store made
        with anything different.
    """
    num_items = len(dataset)
    if num_items == 0:
        raise ValueError("pre_encode: the dataset is empty")
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size ({shard_size}) and batch_size ({batch_size}) must be positive")
    num_frames = _item_video(dataset[0], 0).shape[0]
    index = {
        "format": FORMAT, "encoder": encoder.name, "feature_dim": encoder.feature_dim, "num_frames": num_frames,
        "num_items": num_items, "shard_size": shard_size, "dtype": _dtype_name(dtype),
        "dataset": json.loads(json.dumps(description)),  # as it will read back from index.json
        "shards": [], "complete": False,
    }
    os.makedirs(out_dir, exist_ok=True)
    existing = read_index(out_dir)
    if existing is not None:
        _refuse_to_mix(existing, index, out_dir)
        index["shards"] = existing["shards"]
        index["complete"] = existing["complete"]
    num_shards = -(-num_items // shard_size)
    if index["complete"]:
        return index
    _write_index(out_dir, index)

    start = len(index["shards"]) * shard_size  # the shards in the index are complete; redo everything after them
    loader = DataLoader(Subset(dataset, range(start, num_items)), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=_collate_videos)
    store_dtype = STORE_DTYPES[index["dtype"]]
    pending, pending_items = [], 0  # encoded batches of the shard being filled
    for videos in loader:
        if videos.shape[1] != num_frames:
            raise ValueError(f"pre_encode: items have different frame counts ({num_frames} and {videos.shape[1]}); "
                             f"the dataset must give clips of a fixed length")
        features = encoder.encode(videos).to("cpu", store_dtype)  # (B, C, F)
        if progress is not None:
            progress(len(features))
        while len(features):
            take = min(len(features), shard_size - pending_items)
            pending.append(features[:take])
            pending_items += take
            features = features[take:]
            if pending_items == shard_size or start + pending_items == num_items:
                _write_shard(out_dir, index, torch.cat(pending), num_shards, on_shard_written)
                start += pending_items
                pending, pending_items = [], 0
    index["complete"] = len(index["shards"]) == num_shards
    _write_index(out_dir, index)
    return index


def _write_shard(out_dir, index, features, num_shards, on_shard_written):
    number = len(index["shards"])
    name = shard_file(number)
    _write_atomically(os.path.join(out_dir, name), lambda tmp: torch.save(features, tmp))  # cat: own storage
    index["shards"].append({"file": name, "num_items": len(features)})
    _write_index(out_dir, index)
    if on_shard_written is not None:
        on_shard_written({"shard": number, "file": name, "num_items": len(features), "num_shards": num_shards})


def _refuse_to_mix(existing, wanted, out_dir):
    """ValueError naming every field in which an existing store differs from the one being written."""
    if existing.get("format") != FORMAT:
        raise ValueError(f"{out_dir} holds {existing.get('format')!r}, not a {FORMAT} latent store; use another "
                         f"--out_dir")
    fields = ("encoder", "feature_dim", "num_frames", "num_items", "shard_size", "dtype", "dataset")
    differences = [f"{key}: stored {existing.get(key)!r}, now {wanted[key]!r}" for key in fields
                   if existing.get(key) != wanted[key]]
    if differences:
        raise ValueError(f"refusing to mix latents in {out_dir}: the store was made with different settings\n  "
                         + "\n  ".join(differences)
                         + "\nUse another --out_dir, or delete this one to start over.")


# ----------------------------------------------------------------------------- reading

class LatentVideoDataset(Dataset):
    """A complete store from `pre_encode`, item i = {"latents": (C, F)} in `dtype` (None: as stored).

    Shards open lazily, memory-mapped, a few at a time (`cached_shards`): fine with DataLoader workers, each of
    which opens its own.
    """

    def __init__(self, out_dir, dtype=torch.float32, cached_shards=4):
        index = read_index(out_dir)
        if index is None:
            raise FileNotFoundError(f"no latent store in {out_dir} ({INDEX} missing): create it with "
                                    f"python utils/pre_encode_videos.py --out_dir {out_dir} ...")
        if index.get("format") != FORMAT:
            raise ValueError(f"{out_dir}/{INDEX} is not a {FORMAT} latent store")
        if not index["complete"]:
            expected = -(-index["num_items"] // index["shard_size"])
            raise RuntimeError(f"the latent store in {out_dir} is incomplete ({len(index['shards'])} of {expected} "
                               f"shards): {RERUN_HINT}; it resumes where it stopped")
        self.out_dir = out_dir
        self.index = index
        self.dtype = dtype
        self.cached_shards = cached_shards
        self._cache = OrderedDict()  # shard number -> memory-mapped (N, C, F) tensor, least recently used first

    @property
    def encoder_name(self):
        return self.index["encoder"]

    @property
    def feature_dim(self):
        return self.index["feature_dim"]

    @property
    def num_frames(self):
        return self.index["num_frames"]

    @property
    def description(self):
        return self.index["dataset"]

    def check_encoder(self, encoder):
        """ValueError unless `encoder` is the one the store was made with (a model decoding its predictions)."""
        if encoder.name != self.encoder_name:
            raise ValueError(f"latent store {self.out_dir} was encoded with {self.encoder_name}, not {encoder.name}; "
                             f"pre-encode again with the model's encoder flags")

    def __len__(self):
        return self.index["num_items"]

    def _shard(self, number):
        if number in self._cache:
            self._cache.move_to_end(number)
            return self._cache[number]
        path = os.path.join(self.out_dir, self.index["shards"][number]["file"])
        shard = torch.load(path, mmap=True, weights_only=True)  # (N, C, F), pages read on access
        self._cache[number] = shard
        if len(self._cache) > self.cached_shards:
            self._cache.popitem(last=False)
        return shard

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a latent store with {len(self)} items")
        i %= len(self)
        shard_size = self.index["shard_size"]
        latents = self._shard(i // shard_size)[i % shard_size]  # (C, F) view into the mapped file
        return {"latents": latents.to(self.dtype or latents.dtype, copy=True)}  # own memory, not the mapping
