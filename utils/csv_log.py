"""metrics.csv that a resumed or requeued run continues instead of erasing.

Lightning's CSV writer deletes an existing metrics.csv when it starts, so a requeued Slurm job lost every row
logged before its pre-emption. This writer keeps them: at its first save it drops only the old rows from the
step it resumes at onwards (the resumed run logs those again), then appends.
"""
import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class ContinuingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self):
        self._resumes = os.path.isfile(self.metrics_file_path)  # keep the file; trimmed at the first save

    def save(self):
        if self.metrics and getattr(self, "_resumes", False):
            self._resumes = False
            self._keep_rows_before(min(int(row.get("step", 0)) for row in self.metrics))
        super().save()

    def _keep_rows_before(self, step):
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            header, rows = reader.fieldnames or [], [r for r in reader if int(float(r.get("step") or 0)) < step]
        tmp = self.metrics_file_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)
        self.metrics_keys = list(header)


class ContinuingCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives a restart in the same folder (docs/method.md §11.1)."""

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
