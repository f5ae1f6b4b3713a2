"""Video end to end: both models train on Moving MNIST through train_model.py, roll out from a checkpoint, and
train on pre-encoded latents with the same loss as on-the-fly encoding."""
import glob
import os

import pytest
import torch
from torch.utils.data import Subset

import train_model
from data.vid.splits import build_video_splits
from data.vid_latents import LatentVideoDataset, pre_encode
from model.vid.ebt import EBT_VID
from model.vid.encoders import build_frame_encoder

TINY = ["--modality", "VID", "--dataset_name", "moving_mnist", "--backbone_type", "pixels", "--image_dims", "32",
        "32", "--pixel_pooling", "2", "--context_length", "7", "--model_size", "4xs", "--override_embedding_dim", "32",
        "--max_steps", "12", "--warm_up_steps", "2", "--batch_size_per_device", "8", "--val_check_interval", "12",
        "--limit_val_batches", "2", "--limit_test_batches", "2", "--log_every_n_steps", "3", "--num_workers", "0",
        "--validation_split_pct", "0.01", "--save_top_k_ckpts", "1", "--no_wandb"]
THINKING = ["--ebt_type", "time_embed", "--mcmc_step_size", "10", "--mcmc_step_size_learnable",
            "--mcmc_step_size_lr_multiplier", "1500"]  # the EBT's


def train(tmp_path, model_name, *extra):
    log_dir = tmp_path / model_name
    thinking = THINKING if model_name == "ebt" else []
    assert train_model.main(TINY + thinking + ["--model_name", model_name, "--log_dir", str(log_dir), "--run_name",
                                               "r", *extra]) == 0
    (run_dir,) = glob.glob(str(log_dir / "r" / "*"))
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("vid")
    return {name: train(tmp_path, name) for name in ("ebt", "baseline_transformer")}


@pytest.mark.slow
def test_both_video_models_train_and_roll_out_from_their_checkpoints(runs, tmp_path, capsys):
    for name, run_dir in runs.items():
        ckpt = os.path.join(run_dir, "checkpoints", "last.ckpt")
        argv = ["--only_test", "--only_test_model_ckpt", ckpt, "--infer_generate_video", "--infer_max_gen_len", "8",
                "--infer_video_condition_frames", "3", "--log_image_every_n_steps", "1", "--execution_mode", "inference",
                "--log_dir",
                str(tmp_path / name), "--run_name", "rollout"]
        if name == "ebt":
            argv += ["--infer_ebt_advanced", "--infer_ebt_num_steps", "3", "--infer_generated_samples", "2"]
        capsys.readouterr()
        assert train_model.main(argv) == 0
        out = capsys.readouterr().out
        assert "frames 3..7 predicted one at a time" in out and "MSE per frame: 3:" in out
        (rollout_dir,) = glob.glob(str(tmp_path / name / "rollout" / "*"))
        assert sorted(os.listdir(os.path.join(rollout_dir, "images"))) == [
            "rollout_batch_0.gif", "rollout_batch_0.png", "rollout_batch_1.gif", "rollout_batch_1.png"]


def test_loss_on_pre_encoded_latents_equals_the_loss_with_on_the_fly_encoding(tmp_path):
    encoder = build_frame_encoder("pixels", [32, 32], pixel_pooling=2)
    _, validation, _ = build_video_splits("moving_mnist", 8, [32, 32], 0, normalization="vae",
                                          moving_mnist_lengths=(8, 6, 6))
    pre_encode(validation, encoder, str(tmp_path / "validation"), {"moving_mnist": "validation"}, shard_size=4,
               batch_size=3, dtype=torch.float32)
    latents = LatentVideoDataset(str(tmp_path / "validation"))
    torch.manual_seed(0)
    model = EBT_VID(dict(feature_dim=encoder.feature_dim, embedding_dim=32, num_transformer_blocks=2,
                         multiheaded_attention_heads=2, context_length=7, mcmc_step_size=10.0), encoder=encoder)
    videos = torch.stack([validation[i]["video"] for i in range(6)])
    stored = torch.stack([latents[i]["latents"] for i in range(6)])
    torch.manual_seed(1)
    on_the_fly = model.forward_loss_wrapper({"video": videos}, "valid")
    torch.manual_seed(1)
    pre_encoded = model.forward_loss_wrapper({"latents": stored}, "valid")
    torch.testing.assert_close(pre_encoded["step_losses"], on_the_fly["step_losses"], rtol=0, atol=0)


@pytest.mark.slow
def test_training_from_a_latents_dir(tmp_path, capsys):
    encoder = build_frame_encoder("pixels", [32, 32], pixel_pooling=2)
    train_split, validation, _ = build_video_splits("moving_mnist", 8, [32, 32], 33, normalization="vae",
                                                    no_randomness=True)
    for name, split, count in (("train", train_split, 32), ("validation", validation, 16)):
        pre_encode(Subset(split, range(count)), encoder, str(tmp_path / "latents" / name), {"split": name},
                   shard_size=16, dtype=torch.float32)
    run_dir = train(tmp_path, "ebt", "--latents_dir", str(tmp_path / "latents"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    # other encoder settings than the store's are refused before any training
    assert train_model.main(TINY + ["--latents_dir", str(tmp_path / "latents"), "--pixel_pooling", "4",
                                    "--log_dir", str(tmp_path / "bad")]) == 2
    assert "pre-encode again with the model's encoder flags" in capsys.readouterr().err
    # clips shorter than the context the run asks for
    assert train_model.main(TINY + ["--latents_dir", str(tmp_path / "latents"), "--context_length", "9",
                                    "--log_dir", str(tmp_path / "bad")]) == 2
    assert "holds clips of 8 frames; this run needs 10" in capsys.readouterr().err
