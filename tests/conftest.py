"""Shared test setup: everything offline, no experiment tracking."""

import os

# Before anything imports huggingface_hub/datasets/wandb: a hub lookup without these hangs 24-48 s here.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
