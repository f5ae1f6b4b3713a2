"""What text data reads: the data flags as one typed config, like the image and video splits' explicit arguments.

`TextDataConfig.from_hparams(hp)` takes them from a run's hyperparameters (a Namespace or a checkpoint's dict);
fields left out keep the flags' defaults, but for the two every run must name.
"""
from dataclasses import dataclass

from model.config import FromHparams, flag


@dataclass
class TextDataConfig(FromHparams):
    dataset_name: str  # no default: the flag's depends on the modality
    context_length: int  # rows hold context_length + 1 tokens: inputs [:-1], targets [1:] (the flag's default is 0)
    dataset_dir: str = flag("dataset_dir")  # a local corpus, a saved/HF-cache copy, or where hub data is cached
    tokenizer: str = flag("tokenizer")  # names the pretokenized cache
    seed: int = flag("seed")  # the train/validation split
    validation_split_pct: float = flag("validation_split_pct")
    pretokenize_dataset: bool = flag("pretokenize_dataset")
    num_workers: int = flag("num_workers")  # processes that pretokenize
    execution_mode: str = flag("execution_mode")  # question/answer sets: pretrain (whole rows) or answers only
    mcmc_replay_buffer: bool = flag("mcmc_replay_buffer")  # the replay buffer stores fixed-length rows
