"""The experiment scripts run (smoke mode, seconds) and regenerate the results summary."""
import json

from experiments import run_all


def test_run_all_in_smoke_mode_writes_numbers_plots_and_the_summary(tmp_path):
    summary = tmp_path / "results.md"
    run_all.main(["--smoke", "--out_dir", str(tmp_path / "results"), "--results_md", str(summary)])
    for name in ("cost_ratio.csv", "cost_ratio.json", "cost_ratio.png"):
        assert (tmp_path / "results" / "cost_ratio" / name).is_file()
    rows = json.loads((tmp_path / "results" / "cost_ratio" / "cost_ratio.json").read_text())["rows"]
    assert rows[0]["time_ratio"] > 1 and rows[0]["flops_ratio"] > 1  # thinking costs more than one pass
    text = summary.read_text()
    assert "Cost of a training step" in text and "| tiny |" in text and "Not yet reproduced here" in text
    assert (tmp_path / "figures" / "cost_ratio.png").is_file()  # the summary's plots sit beside it
    assert (tmp_path / "figures" / "learning_curves.png").is_file()
    assert "## Learning curves" in text and "| EBT | 6 |" in text and "| Transformer++ | 6 |" in text
