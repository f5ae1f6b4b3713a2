"""Downstream benchmarks: hub-schema fixtures on disk -> normalised rows, split mapping, formats, collator, errors."""

import argparse
import json
import pickle

import pytest
import torch
from datasets import Dataset as HFDataset
from datasets import DatasetDict

import data.nlp.downstream as downstream
from data.nlp.downstream import (DOWNSTREAM_PREFIXES, DownstreamCollator, DownstreamDataset, format_example,
                                 is_downstream, load_downstream_split, reference_answer)
from data.nlp.tokenizer import load_tokenizer


def make_hp(dataset_name, dataset_dir="", **overrides):
    hp = dict(dataset_name=dataset_name, dataset_dir=str(dataset_dir), seed=33, execution_mode="pretrain",
              validation_split_pct=0.25)
    return argparse.Namespace(**{**hp, **overrides})


def rows_of(hp, split):
    return [dict(row) for row in load_downstream_split(hp, split)]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="session")
def byte_tok():
    return load_tokenizer("byte")


# ----------------------------------------------------------------------------------------------------------------
# Fixtures in each hub schema

def gsm8k_rows(n, start=0):
    return [{"question": f"Tom has {i} apples and buys one. How many now?",
             "answer": f"He has {i} + 1 = <<{i}+1={i + 1}>>{i + 1} apples.\n#### {i + 1}"}
            for i in range(start, start + n)]


SQUAD = [
    {"id": "a1", "title": "Rivers", "context": "The Nile is long.", "question": "What is long?",
     "answers": {"text": ["The Nile", "Nile"], "answer_start": [0, 4]}},
    {"id": "a2", "title": "Rivers", "context": "The Nile is long.", "question": "What is short?",
     "answers": {"text": [], "answer_start": []}},  # SQuAD v2 unanswerable: dropped
    {"id": "a3", "title": "Cats", "context": "Cats purr.", "question": "Who purrs?",
     "answers": {"text": ["Cats"], "answer_start": [0]}},
]


def arc_rows(prefix, n):
    return [{"id": f"{prefix}{i}", "question": f"{prefix} question {i}?",
             "choices": {"text": ["red", "blue", "green"], "label": ["A", "B", "C"]}, "answerKey": "ABC"[i % 3]}
            for i in range(n)]


def bigbench_rows(n, start=0):
    return [{"idx": i, "inputs": f"Q: What is {i} plus {i}? Answer:", "targets": [str(2 * i), f"{2 * i}.0"],
             "multiple_choice_targets": [], "multiple_choice_scores": []} for i in range(start, start + n)]


PLANBENCH = [{"task": "task_1_plan_generation", "prompt_type": "oneshot", "domain": "blocksworld", "instance_id": i,
              "example_instance_ids": [i + 100], "query": f"[STATEMENT] plan {i} [PLAN]",
              "ground_truth_plan": f"(unstack b{i} a)\n(put-down b{i})\n"} for i in range(8)]

LAMBADA = [{"text": f"story {i} goes on and on until the very end word{i}"} for i in range(8)]


# ----------------------------------------------------------------------------------------------------------------
# Names

def test_downstream_names():
    assert DOWNSTREAM_PREFIXES == ("gsm8k", "squad", "ai2arc", "bigbench_", "lambada", "planbench")
    for name in ("gsm8k", "squad", "ai2arc", "ai2arc_easy", "ai2arc_all", "bigbench_matrixshapes", "lambada",
                 "planbench", "planbench_task_2_plan_optimality"):
        assert is_downstream(name), name
    for name in ("shakespeare", "bigbench", "gsm8kx", "text", "pajama"):
        assert not is_downstream(name), name


# ----------------------------------------------------------------------------------------------------------------
# Each dataset: normalised rows and split mapping

def test_gsm8k_save_to_disk_splits_and_validation_slice(tmp_path):
    DatasetDict({"train": HFDataset.from_list(gsm8k_rows(40)),
                 "test": HFDataset.from_list(gsm8k_rows(5, start=100))}).save_to_disk(str(tmp_path))
    hp = make_hp("gsm8k", tmp_path)
    train, validation, test = (rows_of(hp, s) for s in ("train", "validation", "test"))
    assert test == [{"question": r["question"], "answer": r["answer"]} for r in gsm8k_rows(5, start=100)]
    assert test[0]["answer"].endswith("#### 101")  # the full solution
    assert len(validation) == 2 and len(train) == 38  # 5% of train, seeded
    assert sorted(r["question"] for r in train + validation) == sorted(r["question"] for r in gsm8k_rows(40))
    assert rows_of(hp, "validation") == validation  # same seed -> same slice
    assert rows_of(make_hp("gsm8k", tmp_path, seed=34), "validation") != validation


def test_gsm8k_parquet_in_a_config_subfolder(tmp_path):
    (tmp_path / "main").mkdir()
    HFDataset.from_list(gsm8k_rows(3)).to_parquet(str(tmp_path / "main" / "test-00000-of-00001.parquet"))
    HFDataset.from_list(gsm8k_rows(10)).to_parquet(str(tmp_path / "main" / "train-00000-of-00001.parquet"))
    assert rows_of(make_hp("gsm8k", tmp_path), "test") == gsm8k_rows(3)
    assert len(rows_of(make_hp("gsm8k", tmp_path), "train")) == 9


def test_squad_drops_unanswerable_and_tests_on_validation(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", SQUAD)
    write_jsonl(tmp_path / "validation.jsonl", SQUAD[:2])
    hp = make_hp("squad", tmp_path)
    assert rows_of(hp, "train") == [{"question": "The Nile is long.\nWhat is long?", "answer": "The Nile"},
                                    {"question": "Cats purr.\nWho purrs?", "answer": "Cats"}]
    assert rows_of(hp, "validation") == rows_of(hp, "test") == rows_of(hp, "train")[:1]


def test_ai2arc_variants(tmp_path):
    for config, prefix in (("ARC-Challenge", "hard"), ("ARC-Easy", "easy")):
        DatasetDict({s: HFDataset.from_list(arc_rows(f"{prefix}-{s}", n))
                     for s, n in (("train", 4), ("validation", 2), ("test", 3))}).save_to_disk(str(tmp_path / config))
    test = rows_of(make_hp("ai2arc", tmp_path), "test")
    assert test[1] == {"question": "hard-test question 1?\nA: red\nB: blue\nC: green", "answer": "B"}
    assert len(test) == 3 and all(r["question"].startswith("hard-test") for r in test)
    assert [r["question"][:10] for r in rows_of(make_hp("ai2arc_easy", tmp_path), "validation")] == ["easy-valid"] * 2
    both = rows_of(make_hp("ai2arc_all", tmp_path), "train")
    assert len(both) == 8 and both[0]["question"].startswith("easy-train") and both[-1]["question"].startswith("hard")


def test_bigbench_hub_schema_tests_on_validation(tmp_path):
    (tmp_path / "matrixshapes").mkdir()
    HFDataset.from_list(bigbench_rows(6)).to_parquet(str(tmp_path / "matrixshapes" / "train.parquet"))
    HFDataset.from_list(bigbench_rows(2, start=50)).to_parquet(str(tmp_path / "matrixshapes" / "validation.parquet"))
    hp = make_hp("bigbench_matrixshapes", tmp_path)
    assert rows_of(hp, "train")[3] == {"question": "Q: What is 3 plus 3?", "answer": "6"}  # " Answer:" removed
    assert rows_of(hp, "test") == rows_of(hp, "validation") == [{"question": "Q: What is 50 plus 50?", "answer": "100"},
                                                                {"question": "Q: What is 51 plus 51?", "answer": "102"}]


def test_bigbench_task_json_gets_a_seeded_split(tmp_path, capsys):
    examples = [{"input": f"{i} + {i} =", "target": str(2 * i)} for i in range(10)]
    examples += [{"input": "Pick red", "target": ["red", "rouge"]},
                 {"input": "Pick blue Answer:", "target_scores": {"red": 0, "blue": 1, "green": 0}}]
    (tmp_path / "task.json").write_text(json.dumps({"name": "toy", "examples": examples}))
    hp = make_hp("bigbench_toy", tmp_path)
    train, validation, test = (rows_of(hp, s) for s in ("train", "validation", "test"))
    assert len(train) == 9 and len(validation) == 3 and test == validation  # 25% held out; test = validation
    everything = {r["question"]: r["answer"] for r in train + validation}
    assert len(everything) == 12 and everything["Pick red"] == "red" and everything["Pick blue"] == "blue"
    assert everything["4 + 4 ="] == "8"
    assert "names no splits" in capsys.readouterr().out
    assert rows_of(make_hp("bigbench_toy", tmp_path, seed=1), "validation") != validation


def test_lambada_modes_and_test_only_splits(tmp_path, capsys):
    write_jsonl(tmp_path / "lambada_test_en.jsonl", LAMBADA)
    pretrain = rows_of(make_hp("lambada", tmp_path), "test")
    assert pretrain[0] == {"question": "", "answer": LAMBADA[0]["text"]}
    assert format_example(pretrain[0], "pretrain") == ("", LAMBADA[0]["text"])
    finetune = rows_of(make_hp("lambada", tmp_path, execution_mode="finetune"), "test")
    assert finetune[2] == {"question": "story 2 goes on and on until the very end", "answer": "word2"}
    assert format_example(finetune[2], "inference") == (
        "[[Question]]: story 2 goes on and on until the very end\n[[Answer]]: ", "word2")

    hp = make_hp("lambada", tmp_path)
    train, validation = rows_of(hp, "train"), rows_of(hp, "validation")
    assert len(train) == 6 and len(validation) == 2 and sorted(r["answer"] for r in train + validation) == sorted(
        r["text"] for r in LAMBADA)
    assert "has only a test split" in capsys.readouterr().out


def test_planbench_train_only(tmp_path):
    HFDataset.from_list(PLANBENCH).to_parquet(str(tmp_path / "train-00000-of-00001.parquet"))
    hp = make_hp("planbench", tmp_path)
    train, validation = rows_of(hp, "train"), rows_of(hp, "validation")
    assert len(train) == 6 and len(validation) == 2
    assert {"question": "[STATEMENT] plan 3 [PLAN]", "answer": "(unstack b3 a)\n(put-down b3)\n"} in train + validation
    with pytest.raises(ValueError, match=r"^--dataset_name planbench: tasksource/planbench has only a train split"):
        load_downstream_split(hp, "test")
    with pytest.raises(ValueError, match=r"only a train split"):  # also without any data: no hub lookup needed
        load_downstream_split(make_hp("planbench"), "test")


def test_unsplit_save_to_disk_folder_is_split_by_seed(tmp_path):
    HFDataset.from_list(gsm8k_rows(20)).save_to_disk(str(tmp_path))
    hp = make_hp("gsm8k", tmp_path)
    train, validation = rows_of(hp, "train"), rows_of(hp, "validation")
    assert len(train) == 19 and len(validation) == 1 and rows_of(hp, "test") == validation


def test_hub_splits_requested(monkeypatch):
    calls = []

    def fake_hub(repo, config, split):
        calls.append((repo, config, split))
        schema = {"openai/gsm8k": gsm8k_rows(20), "rajpurkar/squad_v2": SQUAD, "allenai/ai2_arc": arc_rows(config, 2),
                  "tasksource/bigbench": bigbench_rows(2), "EleutherAI/lambada_openai": LAMBADA,
                  "tasksource/planbench": PLANBENCH}
        return HFDataset.from_list(schema[repo])

    monkeypatch.setattr(downstream, "load_dataset", fake_hub)
    expected = [
        ("gsm8k", "validation", [("openai/gsm8k", "main", "train")], 1),
        ("gsm8k", "test", [("openai/gsm8k", "main", "test")], 20),
        ("squad", "test", [("rajpurkar/squad_v2", "squad_v2", "validation")], 2),
        ("ai2arc", "test", [("allenai/ai2_arc", "ARC-Challenge", "test")], 2),
        ("ai2arc_all", "validation", [("allenai/ai2_arc", "ARC-Easy", "validation"),
                                      ("allenai/ai2_arc", "ARC-Challenge", "validation")], 4),
        ("bigbench_dyck_languages", "test", [("tasksource/bigbench", "dyck_languages", "validation")], 2),
        ("bigbench_dyck_languages", "train", [("tasksource/bigbench", "dyck_languages", "train")], 2),
        ("lambada", "test", [("EleutherAI/lambada_openai", "en", "test")], 8),
        ("lambada_de", "train", [("EleutherAI/lambada_openai", "de", "test")], 6),
        ("planbench", "validation", [("tasksource/planbench", "task_1_plan_generation", "train")], 2),
        ("planbench_task_7_plan_execution", "train", [("tasksource/planbench", "task_7_plan_execution", "train")], 6),
    ]
    for name, split, hub_calls, n in expected:
        calls.clear()
        assert len(load_downstream_split(make_hp(name), split)) == n, (name, split)
        assert calls == hub_calls, (name, split)
    calls.clear()
    assert len(load_downstream_split(make_hp("bigbench_all"), "test")) == 2 * 6
    assert [c[1] for c in calls] == list(downstream.BIGBENCH_ALL) and {c[2] for c in calls} == {"validation"}


# ----------------------------------------------------------------------------------------------------------------
# Formats and the dataset

def test_formats_per_execution_mode():
    example = {"question": "2+2?", "answer": "4"}
    assert format_example(example, "pretrain") == ("Question: 2+2?\nAnswer: ", "4")
    assert format_example(example, "finetune") == ("[[Question]]: 2+2?\n[[Answer]]: ", "4")
    assert format_example(example, "inference") == ("[[Question]]: 2+2?\n[[Answer]]: ", "4")
    with pytest.raises(ValueError, match=r"^--execution_mode train: choose one of pretrain, finetune, inference"):
        format_example(example, "train")


def test_reference_answer():
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72 "
    assert reference_answer("gsm8k", solution) == "72"
    assert reference_answer("gsm8k", "no marker ") == "no marker"
    assert reference_answer("squad", "  The Nile \n") == "The Nile"
    assert reference_answer("ai2arc", "B") == "B"


def test_dataset_items_are_formatted(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", gsm8k_rows(3))
    write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(3))
    item = DownstreamDataset(make_hp("gsm8k", tmp_path, execution_mode="finetune"), "test")[torch.tensor(1)]
    assert item == {"prompt": f"[[Question]]: {gsm8k_rows(3)[1]['question']}\n[[Answer]]: ",
                    "answer": gsm8k_rows(3)[1]["answer"]}
    pretrain = DownstreamDataset(make_hp("gsm8k", tmp_path), "test")
    assert len(pretrain) == 3 and pretrain[0]["prompt"].startswith("Question: Tom has 0 apples")


# ----------------------------------------------------------------------------------------------------------------
# Collator (byte tokenizer: one token per UTF-8 byte, pad id 257)

ITEMS = [{"prompt": "Question: ab\nAnswer: ", "answer": "xyz"}, {"prompt": "Q: é\n", "answer": "1"}]


def test_collator_pretrain_and_finetune_masks(byte_tok):
    lengths = [(len(i["prompt"].encode()), len(i["answer"].encode())) for i in ITEMS]  # (21, 3), (6, 1)
    pretrain = DownstreamCollator(byte_tok, 64, "pretrain")(ITEMS)
    ids, mask = pretrain["input_ids"], pretrain["loss_mask"]
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == mask.shape == (2, 24)
    assert ids[0].tolist() == list(b"Question: ab\nAnswer: xyz")
    assert ids[1, :7].tolist() == list("Q: é\n1".encode()) and (ids[1, 7:] == byte_tok.pad_token_id).all()
    assert mask[0].all() and mask[1, :7].all() and not mask[1, 7:].any()  # every real token, no pad

    finetune = DownstreamCollator(byte_tok, 64, "finetune")(ITEMS)
    assert torch.equal(finetune["input_ids"], ids)
    for b, (p, a) in enumerate(lengths):  # exactly the answer bytes
        assert finetune["loss_mask"][b].nonzero().flatten().tolist() == list(range(p, p + a))
    assert bytes(ids[0][finetune["loss_mask"][0]].tolist()) == b"xyz"


def test_collator_truncates_to_max_length(byte_tok):
    pretrain = DownstreamCollator(byte_tok, 22, "pretrain")(ITEMS)
    assert pretrain["input_ids"].shape == (2, 22)
    assert pretrain["input_ids"][0].tolist() == list(b"Question: ab\nAnswer: x")
    finetune = DownstreamCollator(byte_tok, 22, "finetune")(ITEMS)
    assert finetune["loss_mask"][0].nonzero().flatten().tolist() == [21]  # what is left of the answer
    cut = DownstreamCollator(byte_tok, 10, "finetune")(ITEMS)  # answer of row 0 cut off entirely: no targets
    assert cut["input_ids"].shape == (2, 10) and not cut["loss_mask"][0].any()
    assert cut["loss_mask"][1].nonzero().flatten().tolist() == [6]


def test_collator_inference_batch(byte_tok):
    collator = pickle.loads(pickle.dumps(DownstreamCollator(byte_tok, 11, "inference")))
    batch = collator(ITEMS)
    assert batch["prompt_lengths"].tolist() == [10, 6] and batch["prompt_lengths"].dtype == torch.long
    assert bytes(batch["prompt_ids"][0].tolist()) == b"Question: ab\nAnswer: "[-10:]  # last max_length - 1 tokens
    assert batch["prompt_ids"][1].tolist() == list("Q: é\n".encode()) + [byte_tok.pad_token_id] * 4  # right-padded
    assert batch["prompts"] == [i["prompt"] for i in ITEMS] and batch["answers"] == ["xyz", "1"]


# ----------------------------------------------------------------------------------------------------------------
# Errors say what to change

def test_errors_say_what_to_change(tmp_path):
    (tmp_path / "empty").mkdir()
    write_jsonl(tmp_path / "arc" / "train.jsonl", arc_rows("a", 2))
    write_jsonl(tmp_path / "arc" / "validation.jsonl", arc_rows("b", 2))
    write_jsonl(tmp_path / "wrong" / "test.jsonl", [{"prompt": "x", "completion": "y"}])
    cases = [
        (make_hp("gsm9k"), "train", r"^--dataset_name gsm9k: unknown downstream dataset; choose gsm8k"),
        (make_hp("ai2arc_hard"), "test", r"^--dataset_name ai2arc_hard: unknown AI2-ARC variant"),
        (make_hp("bigbench_"), "test", r"^--dataset_name bigbench_: name a BIG-bench task"),
        (make_hp("planbench_all"), "train", r"^--dataset_name planbench_all: unknown PlanBench task"),
        (make_hp("lambada_xx"), "test", r"^--dataset_name lambada_xx: unknown LAMBADA language"),
        (make_hp("gsm8k", tmp_path / "nope"), "test", r"^--dataset_dir .*nope: does not exist"),
        (make_hp("gsm8k", tmp_path / "empty"), "test", r"^--dataset_dir .*empty: holds no data for --dataset_name "
                                                       r"gsm8k"),
        (make_hp("bigbench_x", tmp_path / "empty"), "test", r"holds no data.*a BIG-bench task\.json"),
        (make_hp("ai2arc", tmp_path / "arc"), "test", r"^--dataset_dir .*arc: has no 'test' split of allenai/ai2_arc "
                                                      r"\(ARC-Challenge\).*found: train, validation"),
        (make_hp("ai2arc_all", tmp_path / "arc"), "test", r"reads one subfolder per config and ARC-Easy/ is missing"),
        (make_hp("gsm8k", tmp_path / "wrong"), "test", r"gsm8k rows need the columns question, answer; missing"),
        (make_hp("gsm8k"), "test", r"^--dataset_name gsm8k: cannot load openai/gsm8k \(main\) from the Hugging Face "
                                   r"hub.*pass --dataset_dir with a local copy"),
        (make_hp("gsm8k", execution_mode="train"), "test", r"^--execution_mode train"),
        (make_hp("gsm8k"), "dev", r"^split 'dev': choose one of train, validation, test"),
    ]
    for hp, split, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            load_downstream_split(hp, split)
        assert "\n" not in str(error.value), str(error.value)


def test_unknown_hub_config_names_the_task(monkeypatch):
    def no_such_config(repo, config, split):
        raise ValueError(f"BuilderConfig '{config}' not found. Available: ['abstract_narrative_understanding', ...]")

    monkeypatch.setattr(downstream, "load_dataset", no_such_config)
    with pytest.raises(ValueError, match=r"^--dataset_name bigbench_nope: tasksource/bigbench has no loadable config "
                                         r"'nope' with split 'validation' \(BuilderConfig 'nope' not found"):
        load_downstream_split(make_hp("bigbench_nope"), "test")
