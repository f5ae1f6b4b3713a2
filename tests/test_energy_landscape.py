"""Pictures of thinking (inference/energy_landscape.py): the numbers behind them are the model's own, for every
modality's EBT, and the script and the evaluation flag write them for a trained checkpoint."""
import glob
import os

import pytest
import torch
from test_training import run

import train_model
from inference.energy_landscape import landscape_report, plot_report
from model.config import InferenceConfig
from model.img.ebt_denoise import EBT_IMG_Denoise
from model.nlp.ebt import EBT_NLP
from model.vid.ebt import EBT_VID

TEXT = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
            multiheaded_attention_heads=4, pad_token_id=39, mcmc_num_steps=2, mcmc_step_size=5.0,
            normalize_initial_condition=True, ebt_type="default")


def text_case():
    torch.manual_seed(0)
    return EBT_NLP(dict(TEXT)), {"input_ids": torch.randint(0, 39, (3, 13))}


def image_case():
    torch.manual_seed(0)
    model = EBT_IMG_Denoise(dict(image_dims=8, patch_size=4, embedding_dim=16, num_transformer_blocks=1,
                                 multiheaded_attention_heads=2, mcmc_step_size=10.0, mcmc_num_steps=2))
    for p in model.transformer.parameters():  # the zero-initialised head would leave nothing to see
        torch.nn.init.normal_(p, std=0.2)
    return model, {"image": torch.rand(3, 3, 8, 8) * 2 - 1}


def video_case():
    torch.manual_seed(0)
    model = EBT_VID(dict(feature_dim=24, embedding_dim=16, num_transformer_blocks=2, multiheaded_attention_heads=2,
                         context_length=8, mcmc_step_size=5.0, mcmc_num_steps=2))
    return model, {"latents": torch.randn(3, 9, 24)}


@pytest.mark.parametrize("case", [text_case, image_case, video_case], ids=["text", "image", "video"])
def test_the_trajectory_and_the_slice_are_the_models_own_energies(case, tmp_path):
    model, batch = case()
    torch.manual_seed(5)
    report = landscape_report(model, batch, InferenceConfig(infer_ebt_num_steps=3), grid=5)
    torch.manual_seed(5)
    own = model.forward_loss_wrapper(batch, "valid")  # evaluation: the same thinking from the same guesses
    s1 = report.system1
    assert len(s1.energies) == 3 and len(s1.losses) == 2 and len(report.system2.losses) >= 3
    steps = torch.stack([e.mean() for e in s1.energies])
    torch.testing.assert_close(steps[:2].float(), own["step_energies"].float())
    torch.testing.assert_close(steps[2].float(), own["final_energy"].float())
    # the slice is a plane through row 0's initial guess that contains its first step
    s = report.slice
    assert s.energy.shape == (5, 5) and s.path.shape == (3, 2)
    assert s.path[0].abs().max() == 0 and abs(float(s.path[1, 1])) < 1e-4 * float(s.path[1].norm())
    torch.testing.assert_close(s.plane.energies(torch.zeros(1, 2))[0], s1.energies[0][0].float().mean())
    torch.testing.assert_close(s.plane.energies(s.path[1:2])[0], s1.energies[1][0].float().mean(), rtol=1e-4,
                               atol=1e-5)
    path = plot_report(report, str(tmp_path / "landscape.png"))
    assert os.path.getsize(path) > 10_000


def test_the_script_and_the_test_run_flag_draw_a_trained_checkpoint(tmp_path, corpus, capsys):
    from inference import plot_energy_landscape

    run_dir = run(tmp_path, corpus, "--max_steps", "6", "--val_check_interval", "6", "--mcmc_step_size", "5")
    checkpoint = os.path.join(run_dir, "checkpoints", "last.ckpt")
    capsys.readouterr()
    assert plot_energy_landscape.main(["--checkpoint", checkpoint, "--rows", "2", "--grid", "5",
                                       "--system2_steps", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("energy per step") == 2 and "slice of row 0" in out
    assert os.path.getsize(os.path.join(run_dir, "energy_landscape.png")) > 10_000

    log_dir = tmp_path / "test_logs"
    assert train_model.main(["--only_test", "--only_test_model_ckpt", checkpoint, "--limit_test_batches", "2",
                             "--infer_plot_energy_landscape", "--no_wandb", "--log_dir", str(log_dir)]) == 0
    (picture,) = glob.glob(str(log_dir / "*" / "*" / "energy_landscape.png"))
    assert f"pictures of thinking: {picture}" in capsys.readouterr().out


def test_the_flag_is_for_test_runs_of_ebts(tmp_path, corpus, capsys):
    from test_training import tiny_run

    assert train_model.main(tiny_run("--dataset_dir", corpus, "--infer_plot_energy_landscape",
                                     "--log_dir", str(tmp_path))) == 2
    assert "--infer_plot_energy_landscape draws a test run's thinking: use it with --only_test" in capsys.readouterr().err
