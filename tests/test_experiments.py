"""The paper-claim experiments: each script runs (smoke mode, seconds) and the summary is regenerated from their
numbers; the arithmetic behind the reported figures (fits, curves, improvements) is checked by hand."""
import json
import math

import pytest

from experiments import denoising, learning_curves, run_all, thinking


@pytest.mark.slow
def test_run_all_in_smoke_mode_writes_numbers_plots_and_the_summary(tmp_path):
    results, summary = tmp_path / "results", tmp_path / "docs" / "results.md"
    run_all.main(["--smoke", "--out_dir", str(results), "--results_md", str(summary)])
    expected = {"cost_ratio": ["cost_ratio.csv", "cost_ratio.json", "cost_ratio.png"],
                "learning_curves": ["learning_curves.json", "learning_curves.png", "data_scaling.csv",
                                    "data_scaling.json", "data_scaling.png"],
                "thinking": ["thinking.csv", "thinking.json", "thinking.png"],
                "dyck": ["dyck.csv", "dyck.json", "dyck.png"],
                "denoising": ["denoising.json", "seed33/psnr_vs_forward_passes.csv",
                              "seed33/psnr_vs_forward_passes.png"],
                "video": ["video.json", "video.png"],
                "thinking_sweep": ["thinking_sweep.json", "video.json", "video.png", "quickstart.json",
                                   "quickstart.png"]}
    for name, files in expected.items():
        for file in files:
            assert (results / name / file).is_file(), f"{name}/{file}"
    rows = json.loads((results / "cost_ratio" / "cost_ratio.json").read_text())["rows"]
    assert rows[0]["time_ratio"] > 1 and rows[0]["flops_ratio"] > 1  # thinking costs more than one pass
    scaling = json.loads((results / "learning_curves" / "data_scaling.json").read_text())
    assert {(r["model"], r["steps"]) for r in scaling["finals"]} == {
        (m, s) for m in ("EBT", "Transformer++") for s in (2, 4)}  # every budget is a finished run
    think = json.loads((results / "thinking" / "thinking.json").read_text())
    ebt = next(r for r in think["results"] if r["model"] == "EBT (S2)" and r["dataset"] == "bbc_news")
    assert sorted(map(int, ebt["steps"])) == thinking.STEPS and sorted(map(int, ebt["best_of"])) == thinking.SAMPLES
    best_of = json.loads((results / "denoising" / "denoising.json").read_text())["best_of"]
    assert {(r["noise_level"], r["samples"]) for r in best_of} == {
        (level, n) for level in denoising.NOISE_LEVELS for n in denoising.BEST_OF[:1]}
    sweep = json.loads((results / "thinking_sweep" / "thinking_sweep.json").read_text())
    assert all(r["copy_loss"] > 0 for r in sweep["video"]["rows"])  # each setting is set beside copying
    assert all(set(r["step_losses"]) == {"1", "2"} for r in sweep["quickstart"]["rows"])
    video = json.loads((results / "video" / "video.json").read_text())
    assert len(video["summary"]["repeat the last real frame"]["rollout_mse"]) == len(video["frames"]) == 11

    text = summary.read_text()
    for title in ("## Cost of a training step", "## Learning", "## Thinking", "## Thinking on Dyck",
                  "## Image denoising", "## Video", "## Is thinking doing anything", "## Not reproduced here"):
        assert title in text
    assert text.count("Verdict") == 9 and "Not run" not in text  # two each: denoising (DiT, best of N), sweeps
    for figure in ("cost_ratio", "data_scaling", "learning_curves", "thinking", "dyck", "psnr_vs_forward_passes",
                   "video", "thinking_sweep_video", "thinking_sweep_quickstart"):
        assert (tmp_path / "docs" / "figures" / f"{figure}.png").is_file()  # the summary's plots sit beside it
        assert f"](figures/{figure}.png)" in text


def test_summary_lists_experiments_without_results(tmp_path):
    summary = tmp_path / "results.md"
    run_all.main(["--summarize_only", "--out_dir", str(tmp_path / "empty"), "--results_md", str(summary)])
    text = summary.read_text()
    assert ("No results yet for: cost_ratio, learning_curves, thinking, dyck, denoising, video, "
            "thinking_sweep" in text)
    assert ("python experiments/run_all.py --only cost_ratio learning_curves thinking dyck denoising video "
            "thinking_sweep" in text)


def test_summary_keeps_the_earlier_section_of_an_experiment_not_rerun(tmp_path):
    summary = tmp_path / "results.md"
    summary.write_text("# Old\n\n## Video: next-frame prediction\n\nVerdict: measured last month.\n\n"
                       "## Not reproduced here\n\n- something\n")
    run_all.main(["--summarize_only", "--out_dir", str(tmp_path / "empty"), "--results_md", str(summary)])
    text = summary.read_text()
    assert "## Video: next-frame prediction\n\nVerdict: measured last month.\n" in text
    assert "Kept from the previous summary (not rerun this time): video." in text
    assert "No results yet for: cost_ratio, learning_curves, thinking, dyck, denoising, thinking_sweep (" in text
    assert text.count("## Not reproduced here") == 1


def test_power_law_fit_recovers_the_exponent():
    tokens = [1e5, 2e5, 4e5, 8e5]
    b, a = learning_curves.fit_power_law(tokens, [3.0 * d ** -0.25 for d in tokens])
    assert b == pytest.approx(0.25) and a == pytest.approx(3.0)


def test_relative_scaling_rate_is_the_ratio_of_fitted_exponents():
    tokens = [1e5, 2e5, 4e5]
    finals = [{"model": m, "seed": s, "tokens": d, "valid_loss": 2.0 * d ** -b}
              for m, b in (("EBT", 0.3), ("Transformer++", 0.2)) for s in (1, 2) for d in tokens]
    out = learning_curves.summarize(finals, [1, 2])
    assert out["models"]["EBT"]["b"] == pytest.approx(0.3)
    assert out["relative_rate_percent"] == pytest.approx(50.0)  # 0.3 / 0.2 - 1
    assert out["relative_rate_percent_per_seed"] == pytest.approx([50.0, 50.0])


def test_learning_curve_places_validations_at_the_tokens_of_their_step(tmp_path):
    # Lightning logs a validation inside the loop at the step of the training log (after 10 steps: step 9) and
    # the one after training at the global step (10)
    (tmp_path / "metrics.csv").write_text(
        "step,train_tokens,train_flops,valid_loss\n4,100,1000,\n4,,,3.0\n9,200,2000,\n9,,,2.5\n10,,,2.4\n")
    assert learning_curves.read_curve(str(tmp_path)) == [(5, 100.0, 1000.0, 3.0), (10, 200.0, 2000.0, 2.4)]


def test_thinking_improvements_are_relative_perplexity_drops_from_system_1():
    steps = {str(s): 2.0 - 0.01 * s for s in thinking.STEPS}
    best_of = {str(n): 1.9 - 0.01 * n for n in thinking.SAMPLES}
    results = [{"model": "EBT (S2)", "seed": 1, "dataset": "shakespeare", "steps": steps, "best_of": best_of},
               {"model": "Transformer++", "seed": 1, "dataset": "shakespeare", "transformer": 1.5}]
    out = thinking.summarize(results)
    ebt = out["EBT (S2) | shakespeare"]
    assert ebt["system1_loss"] == pytest.approx(1.97)  # 3 steps, one sample
    assert ebt["longer_percent"] == pytest.approx(100 * (1 - math.exp(1.92 - 1.97)))
    assert ebt["longer_verified_percent"] == pytest.approx(100 * (1 - math.exp(1.82 - 1.97)))
    assert out["Transformer++ | shakespeare"] == {"loss": 1.5}


def test_best_of_n_is_compared_with_one_sample_at_the_steps_where_it_does_best():
    rows = [{"seed": seed, "noise_level": level, "samples": 2, "steps": steps, "forward_passes": 2 * steps,
             "psnr": 20.0 + steps + seed, "one_sample_psnr": 20.5 + steps + seed}
            for seed in (1, 2) for level in denoising.NOISE_LEVELS for steps in (1, 2, 3)]
    rows[0]["psnr"] += 2.0  # seed 1, the first noise level, 1 step: best of 2 gains 1.5 dB there
    out = denoising.summarize_best_of(rows)
    first = out[f"{denoising.NOISE_LEVELS[0]}/2"]
    assert first["steps"] == 3 and first["forward_passes"] == 6
    assert first["psnr"] == pytest.approx(24.5) and first["gain_per_seed"] == pytest.approx([-0.5, -0.5])
    assert first["gain_range_all_steps"] == pytest.approx([-0.5, 1.5])


def test_only_runs_that_ran_to_their_end_are_reused(tmp_path):
    from experiments.common import finished_run

    assert finished_run(str(tmp_path), "never_started") is None
    interrupted = tmp_path / "run" / "2026-01-01_00-00-00" / "checkpoints"
    interrupted.mkdir(parents=True)
    (interrupted / "last.ckpt").write_bytes(b"")  # a checkpoint from a validation, but no final plot
    assert finished_run(str(tmp_path), "run") is None
    done = tmp_path / "run" / "2026-01-02_00-00-00"
    (done / "checkpoints").mkdir(parents=True)
    (done / "checkpoints" / "last.ckpt").write_bytes(b"")
    (done / "training_curves.png").write_bytes(b"")
    assert finished_run(str(tmp_path), "run") == str(done)  # the newest folder, finished
    from experiments.common import run_commands

    run_commands({"run": ["false"]}, str(tmp_path / "logs"), reuse_finished_in=str(tmp_path))  # skipped: finished
    with pytest.raises(SystemExit, match="training failed: run"):
        run_commands({"run": ["false"]}, str(tmp_path / "logs"))


def test_sweep_refuses_options_it_would_not_use(tmp_path):
    from experiments import thinking_sweep
    from utils.usage import UsageError

    out = ["--out_dir", str(tmp_path / "sweep")]
    with pytest.raises(UsageError, match="add video to --sweeps"):
        thinking_sweep.main(["--sweeps", "quickstart", "--video_steps", "100", *out])
    with pytest.raises(UsageError, match="give one seed"):
        thinking_sweep.main(["--seeds", "1", "2", *out])
    assert not (tmp_path / "sweep").exists()  # refused before any work
