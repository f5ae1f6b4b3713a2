"""Checkpoints that an interrupted write cannot destroy."""
import errno
import os
import tempfile

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_torch_save(obj, path):
    """Write to a temporary file in the same folder, fsync, then rename over `path` (atomic on POSIX)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".ckpt")
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, (OSError, RuntimeError)):
            raise CheckpointWriteError(f"could not write the checkpoint {path}: {write_failure(error)}") from error
        raise


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, unwritable folder); the previous one is untouched."""


def write_failure(error):
    """What went wrong in a failed write, in words (torch reports a full disk as 'file write failed')."""
    text = str(error)
    if getattr(error, "errno", None) == errno.ENOSPC or "write failed" in text or "No space left" in text:
        return "the disk is full (free some space; the previous checkpoint is kept)"
    if getattr(error, "errno", None) in (errno.EACCES, errno.EROFS, errno.EPERM):
        return "the folder is not writable (the previous checkpoint is kept)"
    return " ".join(text.split())[:300]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic: the previous best/last file survives a crash."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        atomic_torch_save(checkpoint, path)
