"""NLP data: tokenizers, datasets and the batch collator."""
import importlib

# name -> submodule: imported on first use, so that importing one light submodule (or data.names) does not
# load torch, datasets and transformers
_LAZY = {
    "NLPCollator": "collator",
    "TextDataConfig": "config",
    "NLP_DATASETS": "datasets",
    "build_nlp_datasets": "datasets",
    "DownstreamCollator": "downstream",
    "DownstreamDataset": "downstream",
    "is_downstream": "downstream",
    "reference_answer": "downstream",
    "build_collator": "splits",
    "build_splits": "splits",
    "load_tokenizer": "tokenizer",
}

__all__ = ["NLP_DATASETS", "NLPCollator", "TextDataConfig", "build_nlp_datasets", "load_tokenizer", "DownstreamCollator",
           "DownstreamDataset", "is_downstream", "reference_answer", "build_collator", "build_splits"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
