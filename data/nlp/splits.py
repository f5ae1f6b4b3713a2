"""One place that turns the data flags into datasets and a collator, for the trainer and the tools."""
from .collator import NLPCollator
from .datasets import build_nlp_datasets
from .downstream import DownstreamCollator, DownstreamDataset, is_downstream


def build_splits(hp, tokenizer, stage="fit"):
    """(train, validation, test) datasets of --dataset_name; a split not needed for `stage` may be None.

    Question/answer sets keep their own splits (docs/method.md §9.2). Local and hub corpora are split by seed, and
    their held-out rows also serve as the test split (never trained on).
    """
    if is_downstream(hp.dataset_name):
        if stage == "test":
            return None, None, DownstreamDataset(hp, "test")
        return DownstreamDataset(hp, "train"), DownstreamDataset(hp, "validation"), None
    train, valid = build_nlp_datasets(hp, tokenizer)
    return train, valid, valid


def build_collator(hp, tokenizer):
    """The batch collator for --dataset_name and --execution_mode."""
    if is_downstream(hp.dataset_name):
        return DownstreamCollator(tokenizer, hp.context_length + 1, hp.execution_mode)
    # the replay buffer stores fixed-length rows (docs/method.md §4.5)
    return NLPCollator(tokenizer.pad_token_id, hp.context_length + 1,
                       pad_to_max_length=getattr(hp, "mcmc_replay_buffer", False))
