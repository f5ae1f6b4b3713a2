"""The Dyck-completion generator (data/nlp/dyck.py): rows are prefixes of balanced words of the asked shape with
the brackets that close them, held-out rows never occur in training, and the folder reads as bigbench_dyck_languages
with the loss on the closing brackets only."""
import json
import random
import subprocess
import sys

import pytest

from data.nlp.config import TextDataConfig
from data.nlp.downstream import DownstreamDataset
from data.nlp.dyck import BRACKETS, DyckShape, dyck_word, generate
from data.nlp.splits import build_collator
from data.nlp.tokenizer import load_tokenizer

OPENERS = {o: c for o, c in BRACKETS}


def depth_profile(text):
    """The nesting depth after each bracket, checking that every closer matches its opener."""
    stack, depths = [], []
    for bracket in text:
        if bracket in OPENERS:
            stack.append(OPENERS[bracket])
        else:
            assert stack and stack.pop() == bracket, text
        depths.append(len(stack))
    return depths


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_words_are_balanced_and_of_the_asked_shape():
    rng, shape = random.Random(0), DyckShape(kinds=2, min_length=6, max_length=12, min_depth=3, max_depth=4)
    for _ in range(300):
        word = dyck_word(rng, shape)
        depths = depth_profile(word)
        assert depths[-1] == 0 and 6 <= len(word) <= 12 and 3 <= max(depths) <= 4
        assert set(word) <= set("()[]")


def test_rows_close_their_prefix_and_held_out_rows_are_new(tmp_path):
    shape, ood = DyckShape(), DyckShape(min_length=18, max_length=28, min_depth=5, max_depth=8)
    description = generate(str(tmp_path), shape, ood, train_rows=400, validation_rows=50, ood_rows=50, seed=1)
    assert description["rows"] == {"train": 400, "validation": 50, "ood": 50}
    train, valid = read(tmp_path / "train.jsonl"), read(tmp_path / "validation.jsonl")
    ood_rows = read(tmp_path / "ood" / "validation.jsonl")
    for row in train + valid + ood_rows:
        prefix, target = row["inputs"], row["targets"][0]
        assert target and depth_profile(prefix)[-1] == len(target)  # the prefix leaves exactly the target open
        assert depth_profile(prefix + target)[-1] == 0
    train_inputs = {r["inputs"] for r in train}
    assert len(train_inputs) == 400 and not train_inputs & {r["inputs"] for r in valid + ood_rows}
    longest_train = max(len(r["inputs"]) + len(r["targets"][0]) for r in train)
    deepest_train = max(max(depth_profile(r["inputs"] + r["targets"][0])) for r in train)
    assert longest_train <= 16 and deepest_train <= 4
    assert all(max(depth_profile(r["inputs"] + r["targets"][0])) >= 5 for r in ood_rows)


def test_generated_folder_trains_as_bigbench_dyck_with_the_loss_on_the_closing_brackets(tmp_path):
    generate(str(tmp_path), DyckShape(), DyckShape(min_length=18, max_length=28, min_depth=5, max_depth=8),
             train_rows=20, validation_rows=4, ood_rows=4, seed=0)
    data = TextDataConfig(dataset_name="bigbench_dyck_languages", context_length=80, dataset_dir=str(tmp_path),
                          tokenizer="byte", execution_mode="finetune")
    train = DownstreamDataset(data, "train")
    assert len(train) == 20 and len(DownstreamDataset(data, "validation")) == 4
    batch = build_collator(data, load_tokenizer("byte"))([train[0]])
    tokenizer = load_tokenizer("byte")
    answer = tokenizer.decode(batch["input_ids"][0][batch["loss_mask"][0]].tolist())
    assert answer == read(tmp_path / "train.jsonl")[0]["targets"][0]
    ood = DownstreamDataset(TextDataConfig(dataset_name="bigbench_dyck_languages", context_length=80,
                                           dataset_dir=str(tmp_path / "ood"), tokenizer="byte",
                                           execution_mode="finetune"), "validation")
    assert len(ood) == 4


@pytest.mark.parametrize("flags, message", [
    (["--max_length", "3"], "--min_length 4 / --max_length 3: need 2 <= min <= max"),
    (["--min_depth", "9", "--max_depth", "9"], "no even length in [4, 16] reaches depth 9"),
    (["--ood_min_length", "10", "--ood_min_depth", "3"], "out-of-distribution words must be longer"),
    (["--kinds", "5"], "--kinds: 5: must be in 1 .. 4"),
])
def test_impossible_shapes_stop_with_one_line(tmp_path, flags, message):
    out = tmp_path / "dyck"
    result = subprocess.run([sys.executable, "-m", "data.nlp.dyck", "--out_dir", str(out), *flags],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_too_few_distinct_prefixes_is_said_before_writing(tmp_path):
    out = tmp_path / "dyck"
    result = subprocess.run([sys.executable, "-m", "data.nlp.dyck", "--out_dir", str(out), "--kinds", "1",
                             "--max_length", "4", "--train_rows", "100"], capture_output=True, text=True)
    assert result.returncode == 2 and "distinct prefixes" in result.stderr
    assert not out.exists()
