"""NLP data: tokenizers, datasets and the batch collator."""

from .collator import NLPCollator
from .datasets import NLP_DATASETS, build_nlp_datasets
from .tokenizer import load_tokenizer

__all__ = ["NLP_DATASETS", "NLPCollator", "build_nlp_datasets", "load_tokenizer"]
