"""Video data: decoding by frame index, the published frame sampling, frame normalisations, datasets, collator."""
import importlib

# name -> submodule: imported on first use, so that importing one light submodule (or data.names) does not
# load torch, datasets and transformers
_LAZY = {
    "VIDEO_EXTENSIONS": "datasets",
    "CorruptFileList": "datasets",
    "VideoClips": "datasets",
    "find_videos": "datasets",
    "CorruptVideo": "decoding",
    "VideoFile": "decoding",
    "VideoInfo": "decoding",
    "probe_video": "decoding",
    "read_frames": "decoding",
    "MovingMNIST": "moving_mnist",
    "sample_frame_indices": "sampling",
    "VIDEO_DATASETS": "splits",
    "build_video_splits": "splits",
    "video_collate": "splits",
    "NORMALIZATIONS": "transforms",
    "denormalize_frames": "transforms",
    "frame_size": "transforms",
    "frames_to_tensor": "transforms",
    "normalization_from_flags": "transforms",
    "normalize_frames": "transforms",
}

__all__ = ["VIDEO_DATASETS", "VIDEO_EXTENSIONS", "NORMALIZATIONS", "build_video_splits", "video_collate",
           "MovingMNIST", "VideoClips", "CorruptFileList", "find_videos", "CorruptVideo", "VideoFile", "VideoInfo",
           "probe_video", "read_frames", "sample_frame_indices", "normalize_frames", "denormalize_frames",
           "frames_to_tensor", "frame_size", "normalization_from_flags"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
