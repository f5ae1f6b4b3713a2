"""Checkpoints that an interrupted write cannot destroy."""
import os
import tempfile

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_torch_save(obj, path):
    """Write to a temporary file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".ckpt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic: the previous best/last file survives a crash."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        atomic_torch_save(checkpoint, path)
