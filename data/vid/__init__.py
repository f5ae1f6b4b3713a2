"""Video data: decoding by frame index, the published frame sampling, frame normalisations, datasets, collator."""

from .datasets import VIDEO_EXTENSIONS, CorruptFileList, VideoClips, find_videos
from .decoding import CorruptVideo, VideoFile, VideoInfo, probe_video, read_frames
from .moving_mnist import MovingMNIST
from .sampling import sample_frame_indices
from .splits import VIDEO_DATASETS, build_video_splits, video_collate
from .transforms import (NORMALIZATIONS, denormalize_frames, frame_size, frames_to_tensor, normalization_from_flags,
                         normalize_frames)

__all__ = ["VIDEO_DATASETS", "VIDEO_EXTENSIONS", "NORMALIZATIONS", "build_video_splits", "video_collate",
           "MovingMNIST", "VideoClips", "CorruptFileList", "find_videos", "CorruptVideo", "VideoFile", "VideoInfo",
           "probe_video", "read_frames", "sample_frame_indices", "normalize_frames", "denormalize_frames",
           "frames_to_tensor", "frame_size", "normalization_from_flags"]
