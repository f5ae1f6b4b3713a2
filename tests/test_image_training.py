"""Image denoising end to end: training both models, testing at an unseen noise level, PSNR, pictures."""
import csv
import glob
import json
import math
import os

import pytest
import torch

import train_model
from tasks.image import ImageQuality
from inference.img import psnr_vs_forward_passes
from inference.img.generate_image import psnr
from model.config import InferenceConfig
from model.img.ebt_denoise import EBT_IMG_Denoise

TINY = ["--modality", "IMG", "--image_task", "denoising", "--dataset_name", "mnist", "--image_dims", "16", "16",
        "--patch_size", "4", "--denoise_images_noise_level", "0.1", "--diffusion_steps", "100",
        "--model_size", "4xs", "--override_embedding_dim", "32",
        "--peak_learning_rate", "2e-3", "--max_steps", "40", "--warm_up_steps", "4", "--batch_size_per_device", "16",
        "--val_check_interval", "40", "--limit_val_batches", "2", "--limit_test_batches", "2", "--num_workers", "0",
        "--validation_split_pct", "0.01", "--save_top_k_ckpts", "1",
        "--log_every_n_steps", "5", "--log_image_every_n_steps", "20", "--no_wandb"]
THINKING = ["--mcmc_step_size", "300", "--mcmc_num_steps", "1", "--mcmc_step_size_learnable",
            "--mcmc_step_size_lr_multiplier", "1500"]  # the EBT's


def train(tmp_path, model_name, *extra):
    log_dir = tmp_path / model_name
    thinking = THINKING if model_name == "ebt" else []
    assert train_model.main(TINY + thinking + ["--model_name", model_name, "--log_dir", str(log_dir), "--run_name",
                                               "r", *extra]) == 0
    (run_dir,) = glob.glob(str(log_dir / "r" / "*"))
    return run_dir


def train_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f) if row.get("train_loss")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("img")
    return {name: train(tmp_path, name) for name in ("ebt", "dit")}


@pytest.mark.slow
def test_both_denoisers_train_and_end_with_psnr_and_pictures(runs, capsys):
    for name, run_dir in runs.items():
        losses = train_losses(run_dir)
        assert losses[-1] < losses[0], (name, losses)
        pictures = sorted(os.listdir(os.path.join(run_dir, "images")))
        assert pictures == ["step_20.png", "step_40.png", "test_noise_0.1_batch_0.png"], pictures
        assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
        # curves against compute: an image's tokens are its 16 patches (16x16 pixels, patch 4), batch 16
        with open(os.path.join(run_dir, "metrics.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r.get("train_tokens")]
        assert rows and all(float(r["train_tokens"]) == (int(r["step"]) + 1) * 16 * 16 for r in rows)
        per_token = {round(float(r["train_flops"]) / float(r["train_tokens"]), 3) for r in rows}
        assert len(per_token) == 1 and per_token.pop() > 0, name


@pytest.mark.slow
def test_testing_a_checkpoint_at_an_unseen_noise_level_keeps_the_trained_schedule(runs, tmp_path, capsys):
    ckpt = os.path.join(runs["dit"], "checkpoints", "last.ckpt")
    argv = ["--only_test", "--only_test_model_ckpt", ckpt, "--denoise_images_noise_level", "0.2",
            "--execution_mode", "inference",  # as job_scripts/img/inference/*.sh
            "--log_dir", str(tmp_path), "--run_name", "t"]
    assert train_model.main(argv) == 0
    (report_path,) = glob.glob(str(tmp_path / "t" / "*" / "test_report.json"))
    report = json.load(open(report_path))
    # trained at 0.1 with 100 steps: a 1000-step schedule; level 0.2 is t = 199, DDIM makes 200 passes
    assert report["test_forward_passes"] == 200
    assert report["test_psnr"] == pytest.approx(psnr(report["test_pixel_mse"]), abs=1e-3)
    assert "PSNR" in capsys.readouterr().out
    # the trained network may not change at test time
    assert train_model.main(argv + ["--patch_size", "2"]) == 2
    assert "--patch_size cannot change at test time" in capsys.readouterr().err


@pytest.mark.slow
def test_psnr_against_forward_passes_script_writes_table_and_plot(runs, tmp_path):
    out = tmp_path / "psnr"
    rows = psnr_vs_forward_passes.main([
        "--ebt_ckpt", os.path.join(runs["ebt"], "checkpoints", "last.ckpt"),
        "--dit_ckpt", os.path.join(runs["dit"], "checkpoints", "last.ckpt"),
        "--noise_levels", "0.1", "0.2", "--ebt_steps", "1", "2", "--dit_recursions", "0", "1", "--ebt_best_of", "2",
        "--num_images", "8", "--out_dir", str(out)])
    for name in ("psnr_vs_forward_passes.csv", "psnr_vs_forward_passes.md", "psnr_vs_forward_passes.png",
                 "ebt_noise_0.2.png", "dit_noise_0.2.png"):
        assert (out / name).is_file(), name
    passes = {(r["model"], r["noise_level"], r["forward_passes"]) for r in rows}
    assert {("EBT", 0.1, 1), ("EBT", 0.1, 2), ("DiT", 0.1, 100), ("DiT", 0.1, 200), ("DiT", 0.2, 400)} <= passes
    # best of 2 noisy samples: twice the passes of the same steps
    assert {("EBT best of 2", 0.1, 2), ("EBT best of 2", 0.2, 4)} <= passes


def test_image_quality_metric_equals_a_hand_computation():
    metric = ImageQuality()
    metric.update(torch.tensor([10.0, 40.0]))
    metric.update(torch.tensor([100.0]))
    mean_mse, mean_psnr = metric.compute()
    assert float(mean_mse) == pytest.approx(50.0)
    assert psnr(mean_mse) == pytest.approx(10 * math.log10(255 ** 2 / 50.0))  # PSNR of the mean MSE, as published
    per_image = [10 * math.log10(255 ** 2 / m) for m in (10.0, 40.0, 100.0)]
    assert float(mean_psnr) == pytest.approx(sum(per_image) / 3)  # the mean of per-image PSNRs


def tiny_ebt(**overrides):
    torch.manual_seed(0)
    model = EBT_IMG_Denoise(dict(image_dims=8, patch_size=4, embedding_dim=16, num_transformer_blocks=1,
                                 multiheaded_attention_heads=2, mcmc_step_size=10.0, **overrides))
    for p in model.transformer.parameters():  # leave the zero-initialised energy head: thinking would do nothing
        torch.nn.init.normal_(p, std=0.2)
    return model


def test_best_of_n_keeps_the_lowest_energy_sample_of_each_image():
    model = tiny_ebt(langevin_dynamics_noise=0.5)
    noised = torch.randn(3, 3, 8, 8)
    icfg = InferenceConfig(infer_ebt_num_steps=2, infer_generated_samples=4)
    torch.manual_seed(5)
    chosen = model.advanced_inference(noised, icfg)
    torch.manual_seed(5)  # the same draws, all four samples kept
    every = model.advanced_inference(noised.repeat_interleave(4, 0), InferenceConfig(infer_ebt_num_steps=2))
    assert every.final_energy.shape == (12,)
    best = every.final_energy.view(3, 4).argmin(1)
    expected = every.states[-1].view(3, 4, 3, 8, 8)[torch.arange(3), best]
    torch.testing.assert_close(chosen.states[-1], expected)
    torch.testing.assert_close(chosen.final_energy, every.final_energy.view(3, 4).min(1).values)


def test_training_noise_is_the_noise_levels_timestep_unless_randomized():
    model = tiny_ebt(diffusion_steps=100, denoise_images_noise_level=0.1)
    assert model.diffusion.num_timesteps == 1000
    assert model.noising.training_timesteps(4, "cpu", randomize=False).tolist() == [99] * 4
    drawn = model.noising.training_timesteps(500, "cpu", randomize=True)
    assert 0 <= int(drawn.min()) and int(drawn.max()) <= 99 and len(set(drawn.tolist())) > 50
    assert model.noising.timestep_for(0.2) == 199
    with pytest.raises(ValueError, match="outside this model's schedule"):
        model.noising.timestep_for(1.5)


@pytest.mark.slow
def test_wandb_offline_image_run_receives_the_picture_grids(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = [a for a in TINY if a != "--no_wandb"]
    argv[argv.index("--max_steps") + 1] = "10"
    argv[argv.index("--log_image_every_n_steps") + 1] = "5"
    argv[argv.index("--val_check_interval") + 1] = "10"
    assert train_model.main(argv + THINKING + ["--model_name", "ebt", "--log_dir", str(tmp_path), "--run_name",
                                               "w"]) == 0
    media = glob.glob(str(tmp_path / "w" / "*" / "wandb" / "offline-run-*" / "files" / "media" / "images" / "*.png"))
    assert len(media) >= 3, media  # steps 5 and 10, and the test batch
