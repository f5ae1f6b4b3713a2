"""Video decoding by frame index: decord first, PyAV when decord is not installed or fails on a file.

The published loaders decoded with OpenCV (seeking with CAP_PROP_POS_FRAMES) and measured durations with an external
ffprobe binary (docs/method.md §12.11). We use neither: frame count, fps and duration come from the container, read
by the same library that decodes the frames. decord seeks to the requested frames (fast on long clips); PyAV decodes
sequentially from the start up to the last requested frame. Both convert to RGB with FFmpeg's swscale, and on the
bundled H.264 clips they return identical pixels (tests/test_video_data.py).

    with VideoFile(path) as video:         # raises CorruptVideo if neither backend can open it
        video.info                         # VideoInfo(frame_count, fps, duration)
        video.frames([0, 4, 8])            # (3, H, W, 3) uint8 RGB
"""

from dataclasses import dataclass

import numpy as np

# PyAV first: decord bundles its own FFmpeg libraries, and loaded before PyAV's they break PyAV's encoders
# (e.g. libvpx-vp9 fails to open), which the tests use to write clips.
try:
    import av
except ImportError:
    av = None

try:
    import decord
except ImportError:  # decord has no wheels for some platforms (e.g. macOS arm64); PyAV then decodes everything
    decord = None

BACKENDS = ("auto", "decord", "pyav")
# Containers sometimes announce a frame or two more than the stream decodes to (e.g. an edit list cutting the tail).
# PyAV repeats the last decoded frame for up to this many missing frames at the end; more is a truncated file.
FRAME_COUNT_SLACK = 2


class CorruptVideo(Exception):
    """A video that cannot be read: missing, empty, truncated, not a video, or without a decodable video stream."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class VideoInfo:
    """What frame sampling needs to know about a video."""
    frame_count: int  # decodable frames (decord: its frame index; PyAV: the container's count, else packets counted)
    fps: float  # average frame rate
    # seconds of video: the video stream's duration where the container records it, else the container's. The
    # published code took ffprobe's format duration, which also spans a longer audio track (e.g. 5.312 s instead
    # of the 5.28 s of video in the bundled bigbuckbunny.mp4) and so slightly compresses the sampled window.
    duration: float


# ----------------------------------------------------------------------------------------------------------------
# backends: each opens a file in __init__ (raising on failure) and has .info and .frames(indices)

class DecordReader:
    """decord.VideoReader on the CPU; one decoding thread, since DataLoader workers already run in parallel."""

    def __init__(self, path, num_threads=1):
        self.reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        frame_count = len(self.reader)
        fps = float(self.reader.get_avg_fps())
        # decord exposes frame timestamps, not durations: first frame start to last frame end is the stream's
        # duration (frame_count / fps at a constant frame rate)
        duration = 0.0
        if frame_count:
            duration = float(self.reader.get_frame_timestamp(frame_count - 1)[1]
                             - self.reader.get_frame_timestamp(0)[0])
        self.info = VideoInfo(frame_count, fps, duration)

    def frames(self, indices):
        return self.reader.get_batch(list(indices)).asnumpy()  # (n, H, W, 3) uint8

    def close(self):
        self.reader = None  # decord frees the demuxer and decoder when the reader is garbage collected


class PyAVReader:
    """PyAV: metadata from the container header; frames decoded in order from the start of the first video stream."""

    def __init__(self, path):
        self.path = path
        with av.open(path) as container:
            if not container.streams.video:
                raise CorruptVideo(path, "the container has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            frame_count = stream.frames
            if not frame_count:  # Matroska/WebM headers carry no frame count: count the stream's packets instead
                frame_count = sum(1 for packet in container.demux(stream) if packet.size > 0)
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:  # in av.time_base units (microseconds); WebM/Matroska record only this
                duration = container.duration / av.time_base
            else:
                duration = frame_count / fps if fps else 0.0
        self.info = VideoInfo(int(frame_count), fps, float(duration))

    def frames(self, indices):
        indices = [int(i) for i in indices]
        wanted, last = set(indices), max(indices)
        decoded, final, count = {}, None, 0
        with av.open(self.path) as container:
            for frame in container.decode(video=0):
                if count in wanted:
                    decoded[count] = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                final, count = frame, count + 1
                if count > last:
                    break
        missing = [i for i in indices if i not in decoded]
        if missing:  # the stream ended before frame `last`: all missing frames lie after the final decoded one
            if final is None or last - (count - 1) > FRAME_COUNT_SLACK:
                raise CorruptVideo(self.path, f"decoded only {count} frames, frame {last} was requested "
                                              f"(the container announces {self.info.frame_count})")
            stand_in = final.to_ndarray(format="rgb24")
            for i in missing:
                decoded[i] = stand_in
        return np.stack([decoded[i] for i in indices])

    def close(self):
        pass


# ----------------------------------------------------------------------------------------------------------------

class VideoFile:
    """One opened video: `.info` (VideoInfo) and `.frames(indices)` -> (n, H, W, 3) uint8 RGB.

    backend "auto" opens with decord and falls back to PyAV when decord is not installed or fails to open or
    decode this file; "decord" / "pyav" use only that library. Every failure is raised as CorruptVideo, naming
    the path and what each backend said. Indices must lie in [0, info.frame_count); repeats are allowed.
    """

    def __init__(self, path, backend="auto", num_threads=1):
        if backend not in BACKENDS:
            raise ValueError(f"video backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.path, self.backend, self.errors = str(path), backend, []
        self.reader = None
        if backend in ("auto", "decord"):
            if decord is None:
                self.errors.append("decord: not installed")
            else:
                self.reader = self.try_open(DecordReader, "decord", self.path, num_threads)
        if self.reader is None and backend in ("auto", "pyav"):
            self.reader = self.pyav_reader()
        if self.reader is None:
            raise CorruptVideo(self.path, "; ".join(self.errors))
        self.info = self.reader.info
        if self.info.frame_count < 1 or self.info.fps <= 0 or self.info.duration <= 0:
            raise CorruptVideo(self.path, f"no playable video: {self.info}")

    def try_open(self, reader_class, name, *args):
        try:
            return reader_class(*args)
        except Exception as error:  # decord raises RuntimeError/DECORDError, PyAV FFmpegError subclasses
            self.errors.append(f"{name}: {error}")
            return None

    def pyav_reader(self):
        if av is None:
            self.errors.append("pyav: not installed")
            return None
        return self.try_open(PyAVReader, "pyav", self.path)

    def frames(self, indices):
        """Frames `indices` (in this order, repeats allowed) as an (n, H, W, 3) uint8 RGB array."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("VideoFile.frames: no frame indices given")
        if min(indices) < 0 or max(indices) >= self.info.frame_count:
            raise ValueError(f"{self.path}: frame indices {min(indices)}..{max(indices)} outside the "
                             f"{self.info.frame_count} frames of the video")
        try:
            return self.reader.frames(indices)
        except CorruptVideo:
            raise
        except Exception as error:
            self.errors.append(f"{type(self.reader).__name__}: {error}")
        if self.backend == "auto" and isinstance(self.reader, DecordReader):  # decord opened it but cannot decode
            self.reader.close()
            self.reader = self.pyav_reader()
            if self.reader is not None:
                try:
                    return self.reader.frames(indices)
                except Exception as error:
                    self.errors.append(f"pyav: {getattr(error, 'reason', error)}")
        raise CorruptVideo(self.path, "; ".join(self.errors))

    def close(self):
        if self.reader is not None:
            self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def probe_video(path, backend="auto"):
    """VideoInfo(frame_count, fps, duration) of `path`; CorruptVideo if it cannot be opened."""
    with VideoFile(path, backend) as video:
        return video.info


def read_frames(path, indices, backend="auto"):
    """Frames `indices` of `path` as an (n, H, W, 3) uint8 RGB array; CorruptVideo if they cannot be decoded."""
    with VideoFile(path, backend) as video:
        return video.frames(indices)
