"""NLP data: tokenizers, datasets and the batch collator."""

from .collator import NLPCollator
from .config import TextDataConfig
from .datasets import NLP_DATASETS, build_nlp_datasets
from .downstream import DownstreamCollator, DownstreamDataset, is_downstream, reference_answer
from .splits import build_collator, build_splits
from .tokenizer import load_tokenizer

__all__ = ["NLP_DATASETS", "NLPCollator", "TextDataConfig", "build_nlp_datasets", "load_tokenizer", "DownstreamCollator",
           "DownstreamDataset", "is_downstream", "reference_answer", "build_collator", "build_splits"]
