"""Iterate a training set once, in one process, with a progress bar (docs/method.md §9.5).

The safe way to download and pre-tokenize a hub corpus before a multi-GPU run (no worker processes
racing for the same cache), and a quick check that every batch of a dataset loads.
Run it as `python train_model.py --debug_dataloader [data flags]` (job_scripts/debug/debug_dataloader.sh).
"""
from argparse import Namespace

from torch.utils.data import DataLoader
from tqdm import tqdm

from model.registry import build_model
from tasks import task_class


def debug_dataloader(hp):
    """Load every training batch once; return {"batches", "rows", "tokens", "max_length"} and print them
    (images and video: {"batches", "samples"})."""
    hp = Namespace(**vars(hp))
    if hp.modality != "NLP":
        return _debug_samples(hp)
    data = task_class(hp)(hp)
    tokenizer = data.tokenizer
    loader = DataLoader(data.splits(None, "fit")[0], batch_size=hp.batch_size_per_device, collate_fn=data.collate(),
                        num_workers=0)
    stats = {"batches": 0, "rows": 0, "tokens": 0, "max_length": 0}
    for batch in tqdm(loader, desc=f"{hp.dataset_name} (train)", unit="batch"):
        ids = batch.get("input_ids", batch.get("prompt_ids"))
        stats["batches"] += 1
        stats["rows"] += ids.shape[0]
        stats["tokens"] += int((ids != tokenizer.pad_token_id).sum())
        stats["max_length"] = max(stats["max_length"], ids.shape[1])
    print(f"{hp.dataset_name}: {stats['batches']} batches, {stats['rows']} rows, {stats['tokens']} tokens, "
          f"longest row {stats['max_length']} tokens")
    return stats


def _debug_samples(hp):
    """Images and video: the run's training split and collator, every batch once (the model supplies the frozen
    parts the data needs: the CLIP tokenizer of text-to-image, the frame encoder of video)."""
    data = task_class(hp)(hp)
    loader = DataLoader(data.splits(build_model(vars(hp)), "fit")[0], batch_size=hp.batch_size_per_device,
                        collate_fn=data.collate(), num_workers=0)
    stats = {"batches": 0, "samples": 0}
    for batch in tqdm(loader, desc=f"{hp.dataset_name} (train)", unit="batch"):
        first = next(iter(batch.values()))
        stats["batches"] += 1
        stats["samples"] += first.shape[0]
    print(f"{hp.dataset_name}: {stats['batches']} batches, {stats['samples']} samples of shape {tuple(first.shape[1:])}")
    return stats
