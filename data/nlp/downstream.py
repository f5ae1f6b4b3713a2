"""Downstream NLP benchmarks (docs/method.md §9.2): GSM8K, SQuAD v2, AI2-ARC, BIG-bench, LAMBADA and PlanBench as
question/answer pairs, formatted per --execution_mode and batched with a loss mask (or as prompts to generate from).

Every example is normalised to {"question": str, "answer": str}. An empty question marks a plain document (LAMBADA
in pretrain mode), which is formatted as ("", text) in every mode.

Split mapping (our split -> the dataset's published split; "seeded slice" = a --seed permutation of that split,
of which the validation part is the given fraction and the train part the rest, so the two never overlap):

    gsm8k      train -> train minus the 5% slice | validation -> seeded 5% slice of train  | test -> test
    squad      train -> train                    | validation -> validation                | test -> validation
    ai2arc     train -> train                    | validation -> validation                | test -> test
    bigbench_* train -> train                    | validation -> validation                | test -> validation
    lambada    train/validation -> a seeded --validation_split_pct split of test (a note says so: they overlap
               the test texts)                                                              | test -> test
    planbench  train/validation -> a seeded --validation_split_pct split of train           | test -> ValueError

Local copies (--dataset_dir, same schema as the hub dataset) are read from `<dataset_dir>/<config>/` when that folder
exists (a hub snapshot: main/, squad_v2/, ARC-Challenge/, <bigbench task>/, en/, task_1_plan_generation/), else from
`<dataset_dir>` itself, which may hold:
  - a DatasetDict.save_to_disk folder (dataset_dict.json), or one split folder per split (`train/`, `test/`, each a
    Dataset.save_to_disk folder or holding data files);
  - .parquet/.jsonl/.json(.gz) files whose name has the split as a word: train.jsonl, test.parquet,
    train-00000-of-00001.parquet, lambada_test_en.jsonl (val/valid/dev also mean validation);
  - rows without a split: a bare Dataset.save_to_disk folder, data files whose name names no split, or (bigbench) a
    BIG-bench task.json. Datasets with one published split (lambada: test, planbench: train) take them as that
    split; the others split them by --seed into train and validation (--validation_split_pct; 5% for gsm8k), and
    test is that validation part, as for bigbench on the hub.
  --dataset_dir may also be one such file. `ai2arc_all` and `bigbench_all` read one subfolder per config.
"""

import functools
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass

import torch
from datasets import Dataset as HFDataset
from datasets import concatenate_datasets, load_dataset, load_from_disk
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from data.names import DOWNSTREAM_PREFIXES, is_downstream  # noqa: F401 (re-exported)

from .datasets import split_train_val

EXECUTION_MODES = ("pretrain", "finetune", "inference")
SPLITS = ("train", "validation", "test")

AI2ARC_VARIANTS = {"": ["ARC-Challenge"], "challenge": ["ARC-Challenge"], "easy": ["ARC-Easy"],
                   "all": ["ARC-Easy", "ARC-Challenge"]}
BIGBENCH_ALL = ("elementary_math_qa", "simple_arithmetic_json", "dyck_languages", "matrixshapes",
                "repeat_copy_logic", "penguins_in_a_table")  # the tasks the paper's code names (docs/method.md §9.2)
LAMBADA_LANGUAGES = ("en", "de", "es", "fr", "it")
PLANBENCH_CONFIGS = ("task_1_plan_generation", "task_2_plan_optimality", "task_3_plan_verification",
                     "task_5_plan_generalization", "task_7_plan_execution", "task_8_1_goal_shuffling",
                     "task_8_2_full_to_partial")  # all of tasksource/planbench; each has only a train split
GSM8K_VALIDATION_FRACTION = 0.05

# Columns each dataset's rows must have (the hub schema), and where the question/answer come from.
REQUIRED_COLUMNS = {
    "gsm8k": ("question", "answer"),
    "squad": ("context", "question", "answers"),
    "ai2arc": ("question", "choices", "answerKey"),
    "bigbench": ("inputs", "targets"),
    "lambada": ("text",),
    "planbench": ("query", "ground_truth_plan"),
}

# Our split -> (published split, part): part None = all of it, "train"/"validation" = that side of a seeded slice.
SPLIT_PLANS = {
    "gsm8k": {"train": ("train", "train"), "validation": ("train", "validation"), "test": ("test", None)},
    "squad": {"train": ("train", None), "validation": ("validation", None), "test": ("validation", None)},
    "ai2arc": {"train": ("train", None), "validation": ("validation", None), "test": ("test", None)},
    "bigbench": {"train": ("train", None), "validation": ("validation", None), "test": ("validation", None)},
    "lambada": {"train": ("test", "train"), "validation": ("test", "validation"), "test": ("test", None)},
    "planbench": {"train": ("train", "train"), "validation": ("train", "validation"), "test": None},
}
UNSPLIT = "(no split)"  # local rows that name no split
UNSPLIT_PLAN = {"train": (UNSPLIT, "train"), "validation": (UNSPLIT, "validation"), "test": (UNSPLIT, "validation")}

SPLIT_WORDS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test"}
DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".jsonl.gz", ".json.gz")
METADATA_FILES = ("dataset_info.json", "dataset_infos.json", "state.json", "dataset_dict.json", "task.json")

_notes_shown = set()


@dataclass(frozen=True)
class DownstreamSpec:
    name: str  # --dataset_name as given
    kind: str  # gsm8k | squad | ai2arc | bigbench | lambada | planbench
    repo: str  # hub dataset
    configs: tuple  # hub configs, concatenated in this order


def downstream_spec(name):
    """Hub repo and configs for --dataset_name `name`; ValueError naming the flag for unknown names or tasks."""
    kind, _, variant = name.partition("_")
    if name in ("gsm8k", "squad"):
        return DownstreamSpec(name, name, *{"gsm8k": ("openai/gsm8k", ("main",)),
                                            "squad": ("rajpurkar/squad_v2", ("squad_v2",))}[name])
    if kind == "ai2arc":
        if variant not in AI2ARC_VARIANTS or name == "ai2arc_":
            raise ValueError(f"--dataset_name {name}: unknown AI2-ARC variant; choose ai2arc (ARC-Challenge), "
                             "ai2arc_easy or ai2arc_all (Easy + Challenge)")
        return DownstreamSpec(name, kind, "allenai/ai2_arc", tuple(AI2ARC_VARIANTS[variant]))
    if kind == "bigbench" and name.startswith("bigbench_"):
        if not re.fullmatch(r"[A-Za-z0-9_]+", variant):
            raise ValueError(f"--dataset_name {name}: name a BIG-bench task after the prefix, e.g. "
                             f"bigbench_{BIGBENCH_ALL[0]}, or bigbench_all for {', '.join(BIGBENCH_ALL)}")
        return DownstreamSpec(name, kind, "tasksource/bigbench", BIGBENCH_ALL if variant == "all" else (variant,))
    if kind == "lambada":
        if name != "lambada" and variant not in LAMBADA_LANGUAGES:
            raise ValueError(f"--dataset_name {name}: unknown LAMBADA language; choose lambada (English) or "
                             f"lambada_<language> with language one of {', '.join(LAMBADA_LANGUAGES)}")
        return DownstreamSpec(name, kind, "EleutherAI/lambada_openai", (variant or "en",))
    if kind == "planbench":
        if name != "planbench" and variant not in PLANBENCH_CONFIGS:  # "all" is not offered (docs/method.md §9.2)
            raise ValueError(f"--dataset_name {name}: unknown PlanBench task; choose planbench "
                             f"({PLANBENCH_CONFIGS[0]}) or planbench_<task> with task one of "
                             f"{', '.join(PLANBENCH_CONFIGS)}")
        return DownstreamSpec(name, kind, "tasksource/planbench", (variant or PLANBENCH_CONFIGS[0],))
    raise ValueError(f"--dataset_name {name}: unknown downstream dataset; choose gsm8k, squad, ai2arc[_easy|_all], "
                     "bigbench_<task>, lambada or planbench[_<task>]")


# ----------------------------------------------------------------------------------------------------------------
# Splits

def load_downstream_split(data, split: str) -> "list[dict] | HFDataset":
    """Rows {"question", "answer"} of our `split` (train | validation | test) of --dataset_name (mapping above)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    check_execution_mode(data.execution_mode)
    spec = downstream_spec(data.dataset_name)
    plan = SPLIT_PLANS[spec.kind][split]
    if plan is None:
        raise ValueError(f"--dataset_name {spec.name}: {spec.repo} has only a train split, so there is no test "
                         "split; evaluate on its validation split (a seeded --validation_split_pct slice of train) "
                         "or choose another --dataset_name")
    parts = [config_split(data, spec, config, split, plan) for config in spec.configs]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def config_split(data, spec, config, split, plan):
    """Our `split` of one hub config: load the published split (or the local rows), normalise, take the slice."""
    real, part = plan
    if data.dataset_dir:
        available = local_splits(data, spec, config)
        if UNSPLIT in available:
            published = {p[0] for p in SPLIT_PLANS[spec.kind].values() if p is not None}
            if len(published) == 1:  # lambada / planbench: the rows are their one published split
                available = {real: available[UNSPLIT]}
            else:
                real, part = UNSPLIT_PLAN[split]
                if split == "test":
                    note(f"note: --dataset_dir {data.dataset_dir} names no splits, so the {spec.name} test split is the "
                         f"seeded validation slice of its rows")
        if real not in available:
            found = ", ".join(sorted(available)) or "none"
            raise ValueError(f"--dataset_dir {data.dataset_dir}: has no '{real}' split of {spec.repo} ({config}) for "
                             f"--dataset_name {spec.name} (found: {found}); add a {real}.jsonl / {real}.parquet file "
                             "or a save_to_disk split of that name")
        raw, where = available[real](), f"--dataset_dir {data.dataset_dir}"
    else:
        raw, where = hub_split(spec, config, real), f"--dataset_name {spec.name}"
    if spec.kind == "lambada" and split != "test":
        note(f"note: {spec.repo} has only a test split; the {spec.name} train/validation splits are a seeded "
             "--validation_split_pct split of it, so a model trained on them has seen the test texts")
    rows = normalise(spec.kind, raw, data.execution_mode, where)
    if part is None:
        return rows
    fraction = GSM8K_VALIDATION_FRACTION if spec.kind == "gsm8k" else data.validation_split_pct
    if len(rows) < 2:
        raise ValueError(f"{where}: {spec.name} ({config}) has {len(rows)} usable row(s), need at least 2 to split "
                         "off a validation slice; add rows")
    train, validation = split_train_val(rows, fraction, data.seed)
    return rows.select((train if part == "train" else validation).indices.tolist())


def note(message):
    """Print a note once per process."""
    if message not in _notes_shown:
        _notes_shown.add(message)
        print(message)


def hub_split(spec, config, real):
    """One published split from the Hugging Face hub (or its local cache)."""
    try:
        return load_dataset(spec.repo, config, split=real)
    except (ConnectionError, FileNotFoundError) as e:  # offline (HF_DATASETS_OFFLINE=1), unreachable, or no repo
        raise ValueError(f"--dataset_name {spec.name}: cannot load {spec.repo} ({config}) from the Hugging Face hub "
                         f"({first_line(e)}); pass --dataset_dir with a local copy (a save_to_disk folder or "
                         f"{real}.jsonl / {real}.parquet files in the hub schema)") from e
    except ValueError as e:  # e.g. "BuilderConfig 'x' not found": no such task
        raise ValueError(f"--dataset_name {spec.name}: {spec.repo} has no loadable config '{config}' with split "
                         f"'{real}' ({first_line(e)}); check the task name") from e


def first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ----------------------------------------------------------------------------------------------------------------
# Local copies

def local_splits(data, spec, config):
    """{published split or UNSPLIT: loader of its raw rows} found in --dataset_dir for one config."""
    root = data.dataset_dir
    if not os.path.exists(root):
        raise ValueError(f"--dataset_dir {root}: does not exist; pass a local copy of {spec.repo} or leave it empty "
                         "to load from the Hugging Face hub")
    path = os.path.join(root, config)
    if not os.path.isdir(path):
        if len(spec.configs) > 1:
            raise ValueError(f"--dataset_dir {root}: --dataset_name {spec.name} reads one subfolder per config and "
                             f"{config}/ is missing (needs {', '.join(spec.configs)})")
        path = root
    found = splits_in(path, spec.kind)
    if not found:
        task_json = ", a BIG-bench task.json" if spec.kind == "bigbench" else ""
        raise ValueError(f"--dataset_dir {root}: holds no data for --dataset_name {spec.name}; expected a "
                         f"save_to_disk folder, train/validation/test .jsonl/.json/.parquet files{task_json} "
                         f"in the {spec.repo} schema")
    return found


def splits_in(path, kind):
    """Loaders of the splits stored at `path` (a folder or one data file); {} if it holds none."""
    if os.path.isfile(path):
        folder, names = os.path.dirname(path), [os.path.basename(path)]
    else:
        folder, names = path, sorted(os.listdir(path))
        if "dataset_dict.json" in names:
            splits = load_from_disk(path)
            return {split_word(s) or s: functools.partial(splits.__getitem__, s) for s in splits}
        if "state.json" in names:
            return {UNSPLIT: functools.partial(load_from_disk, path)}

    found, unsplit = {}, []
    for name in names:
        full = os.path.join(folder, name)
        split = split_word(name)
        if os.path.isdir(full):
            if split and os.path.exists(os.path.join(full, "state.json")):
                found[split] = functools.partial(load_from_disk, full)
            elif split and data_files(full):
                found[split] = functools.partial(read_files, data_files(full))
        elif name.endswith(DATA_SUFFIXES) and name not in METADATA_FILES:
            if split:
                found.setdefault(split, []).append(full)
            else:
                unsplit.append(full)
    found = {s: functools.partial(read_files, f) if isinstance(f, list) else f for s, f in found.items()}
    if found:
        return found  # files that name no split next to ones that do are ignored
    if kind == "bigbench" and "task.json" in names:
        return {UNSPLIT: functools.partial(read_bigbench_task_json, os.path.join(folder, "task.json"))}
    if unsplit:
        return {UNSPLIT: functools.partial(read_files, unsplit)}
    return {}


def split_word(name):
    """The split a file or folder name names as a word (train-00000-of-00001.parquet -> train), else None."""
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        if word in SPLIT_WORDS:
            return SPLIT_WORDS[word]
    return None


def data_files(folder):
    return sorted(f for suffix in DATA_SUFFIXES for f in glob.glob(os.path.join(folder, "*" + suffix))
                  if os.path.basename(f) not in METADATA_FILES)


def read_files(files):
    """Rows of .parquet (preferred when both are there) or .jsonl/.json files."""
    parquet = [f for f in files if f.endswith(".parquet")]
    if parquet:
        return load_dataset("parquet", data_files=parquet, split="train")
    return load_dataset("json", data_files=files, split="train")


def read_bigbench_task_json(path):
    """An original BIG-bench task.json as rows in the tasksource/bigbench schema (inputs, targets, choices)."""
    with open(path, encoding="utf-8") as f:
        task = json.load(f)
    examples = task.get("examples") if isinstance(task, dict) else None
    if not isinstance(examples, list):
        raise ValueError(f"--dataset_dir {path}: a BIG-bench task.json needs an 'examples' list (programmatic and "
                         "subtask-only tasks are not supported)")
    rows = []
    for ex in examples:
        scores = ex.get("target_scores") or {}
        target = ex.get("target", [])
        targets = [target] if isinstance(target, str) else list(target)
        rows.append({"inputs": ex["input"], "targets": [str(t) for t in targets],
                     "multiple_choice_targets": list(scores), "multiple_choice_scores": [float(s) for s in
                                                                                         scores.values()]})
    return HFDataset.from_list(rows)


# ----------------------------------------------------------------------------------------------------------------
# Normalisation to {"question", "answer"}

def normalise(kind, raw, execution_mode, where):
    """Raw hub-schema rows -> {"question", "answer"} rows (rows without an answer dropped), in memory."""
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in raw.column_names]
    if missing:
        raise ValueError(f"{where}: {kind} rows need the columns {', '.join(REQUIRED_COLUMNS[kind])}; "
                         f"missing {', '.join(missing)} (found {', '.join(raw.column_names)})")
    batch_fn = functools.partial(NORMALISERS[kind], execution_mode=execution_mode)
    fingerprint = hashlib.sha256(f"{raw._fingerprint}-{kind}-{execution_mode}".encode()).hexdigest()[:32]
    return raw.map(batch_fn, batched=True, remove_columns=raw.column_names, keep_in_memory=True,
                   new_fingerprint=fingerprint)


def qa(pairs):
    pairs = list(pairs)
    return {"question": [q for q, _ in pairs], "answer": [a for _, a in pairs]}


def gsm8k_rows(batch, execution_mode):
    return qa(zip(batch["question"], batch["answer"]))  # answer: the full solution, "#### n" included


def squad_rows(batch, execution_mode):
    return qa((f"{context}\n{question}", answers["text"][0])  # first reference answer
              for context, question, answers in zip(batch["context"], batch["question"], batch["answers"])
              if answers["text"])  # SQuAD v2's unanswerable questions have no answer text: dropped


def ai2arc_rows(batch, execution_mode):
    return qa((question + "".join(f"\n{label}: {text}" for label, text in zip(choices["label"], choices["text"])),
               key) for question, choices, key in zip(batch["question"], batch["choices"], batch["answerKey"]))


def bigbench_rows(batch, execution_mode):
    n = len(batch["inputs"])
    choices = batch.get("multiple_choice_targets") or [[]] * n
    scores = batch.get("multiple_choice_scores") or [[]] * n

    def target(targets, options, option_scores):
        if targets:
            return targets[0]  # the first of the accepted targets
        if options and option_scores:
            return options[max(range(len(options)), key=lambda i: option_scores[i])]  # best-scored choice
        return None

    def question(text):
        text = text.rstrip()  # the input often ends with its own answer cue; our format adds "Answer: "
        return text[:-len(" Answer:")].rstrip() if text.endswith(" Answer:") else text

    pairs = ((question(text), target(t, c, s)) for text, t, c, s in zip(batch["inputs"], batch["targets"], choices,
                                                                        scores))
    return qa((q, a) for q, a in pairs if a is not None)  # rows with no target at all are dropped


def lambada_rows(batch, execution_mode):
    if execution_mode == "pretrain":  # the whole passage as one plain document
        return qa(("", text) for text in batch["text"])
    pairs = (text.rsplit(None, 1) for text in batch["text"])  # (all words but the last, the last word)
    return qa((p[0], p[1]) for p in pairs if len(p) == 2)


def planbench_rows(batch, execution_mode):
    return qa(zip(batch["query"], batch["ground_truth_plan"]))


NORMALISERS = {"gsm8k": gsm8k_rows, "squad": squad_rows, "ai2arc": ai2arc_rows, "bigbench": bigbench_rows,
               "lambada": lambada_rows, "planbench": planbench_rows}


# ----------------------------------------------------------------------------------------------------------------
# Formatting, items and batches

def check_execution_mode(execution_mode):
    if execution_mode not in EXECUTION_MODES:
        raise ValueError(f"--execution_mode {execution_mode}: choose one of {', '.join(EXECUTION_MODES)}")


def format_example(example, execution_mode) -> "tuple[str, str]":
    """(prompt, answer); the training text is prompt + answer. An empty question is a plain document: ("", text)."""
    check_execution_mode(execution_mode)
    question, answer = example["question"], example["answer"]
    if not question:
        return "", answer
    if execution_mode == "pretrain":
        return f"Question: {question}\nAnswer: ", answer
    return f"[[Question]]: {question}\n[[Answer]]: ", answer  # finetune; inference (answer = the reference)


def reference_answer(dataset_name, answer) -> str:
    """The part of a reference answer that generations are scored against (GSM8K: the number after '####')."""
    if dataset_name == "gsm8k":
        return answer.split("####")[-1].strip()
    return answer.strip()


class DownstreamDataset(Dataset):
    """One split of --dataset_name as {"prompt", "answer"} items formatted for --execution_mode."""

    def __init__(self, data, split, examples=None):
        check_execution_mode(data.execution_mode)
        self.execution_mode = data.execution_mode
        self.examples = load_downstream_split(data, split) if examples is None else examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, index):
        prompt, answer = format_example(self.examples[int(index)], self.execution_mode)  # Subset passes 0-d tensors
        return {"prompt": prompt, "answer": answer}


class DownstreamCollator:
    """{"prompt", "answer"} items -> a training batch (input_ids + loss_mask) or, in inference, prompts to continue.

    pretrain/finetune: prompt and answer are tokenized separately (no special tokens) and concatenated, cut to
    `max_length` (= context_length + 1) tokens and right-padded with the pad id. loss_mask[b, t] says whether token t
    counts as a target (the model uses input_ids[:, 1:] with loss_mask[:, 1:]): every real token in pretrain, only
    answer tokens in finetune. A finetune row whose answer is cut off entirely stays in the batch with no target.
    inference: prompt_ids keeps each prompt's last max_length - 1 tokens, right-padded; prompt_lengths are the real
    lengths; prompts and answers are the item strings.
    """

    def __init__(self, tokenizer, max_length, execution_mode):
        check_execution_mode(execution_mode)
        if max_length < (2 if execution_mode == "inference" else 1):
            raise ValueError(f"--context_length: rows of {max_length} tokens are too short for {execution_mode}")
        self.tokenizer, self.max_length, self.execution_mode = tokenizer, max_length, execution_mode
        self.pad_token_id = tokenizer.pad_token_id

    def encode(self, texts):
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def pad(self, rows, value):
        return pad_sequence(rows, batch_first=True, padding_value=value)

    def __call__(self, items):
        prompts, answers = [item["prompt"] for item in items], [item["answer"] for item in items]
        prompt_ids = self.encode(prompts)
        if self.execution_mode == "inference":
            keep = self.max_length - 1
            rows = [torch.tensor(ids[-keep:] if len(ids) > keep else ids, dtype=torch.long) for ids in prompt_ids]
            return {"prompt_ids": self.pad(rows, self.pad_token_id),
                    "prompt_lengths": torch.tensor([len(r) for r in rows], dtype=torch.long),
                    "prompts": prompts, "answers": answers}
        rows, masks = [], []
        for p, a in zip(prompt_ids, self.encode(answers)):
            ids = (p + a)[:self.max_length]
            targets = len(ids) if self.execution_mode == "pretrain" else max(0, len(ids) - len(p))
            rows.append(torch.tensor(ids, dtype=torch.long))
            masks.append(torch.arange(len(ids)) >= len(ids) - targets)
        return {"input_ids": self.pad(rows, self.pad_token_id), "loss_mask": self.pad(masks, False)}
