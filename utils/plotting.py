"""Training curves from a run's metrics.csv (written by Lightning's CSVLogger)."""
import csv
import math

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt


def read_metric_columns(csv_path):
    """{column: [(step, value), ...]} for every numeric column of a CSVLogger metrics file."""
    columns = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if not step:
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue
                if math.isfinite(number):
                    columns.setdefault(key, []).append((int(float(step)), number))
    return columns


def plot_training_curves(csv_path, png_path, title="", ylabel="cross-entropy (nats / token)"):
    """Training loss and validation loss per thinking step against optimizer steps, saved as PNG."""
    columns = read_metric_columns(csv_path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in sorted(columns):
        if key == "train_loss" or (key.startswith("valid_loss") and "perplexity" not in key):
            steps, values = zip(*columns[key])
            ax.plot(steps, values, label=key, marker="o" if key.startswith("valid") else None,
                    linewidth=1 if key == "train_loss" else 1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path
