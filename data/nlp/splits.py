"""One place that turns the data flags into datasets and a collator, for the trainer and the tools."""
from .collator import NLPCollator
from .config import TextDataConfig
from .datasets import build_nlp_datasets
from .downstream import DownstreamCollator, DownstreamDataset, is_downstream


def build_splits(data, tokenizer, stage="fit"):
    """(train, validation, test) datasets of --dataset_name; a split not needed for `stage` may be None. `data`: a
    TextDataConfig, or hyperparameters to take one from.

    Question/answer sets keep their own splits (docs/method.md §9.2). Local and hub corpora are split by seed, and
    their held-out rows also serve as the test split (never trained on).
    """
    data = text_data_config(data)
    if is_downstream(data.dataset_name):
        if stage == "test":
            return None, None, DownstreamDataset(data, "test")
        return DownstreamDataset(data, "train"), DownstreamDataset(data, "validation"), None
    train, valid = build_nlp_datasets(data, tokenizer)
    return train, valid, valid


def build_collator(data, tokenizer):
    """The batch collator for --dataset_name and --execution_mode."""
    data = text_data_config(data)
    if is_downstream(data.dataset_name):
        return DownstreamCollator(tokenizer, data.context_length + 1, data.execution_mode)
    # the replay buffer stores fixed-length rows (docs/method.md §4.5)
    return NLPCollator(tokenizer.pad_token_id, data.context_length + 1,
                       pad_to_max_length=data.mcmc_replay_buffer)


def text_data_config(data):
    return data if isinstance(data, TextDataConfig) else TextDataConfig.from_hparams(data)
