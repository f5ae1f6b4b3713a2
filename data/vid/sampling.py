"""Which frames of a video make one clip: the published frame-index sampling (docs/method.md §9.4), a pure function.

With T = frame_count - 1 ("total frames" as published: the last frame is never the end of a span) and C =
num_frames, in this order of precedence:

  1. T < C                  evenly spaced over the clip: floor(linspace(0, T, C)) (frames repeat in short clips)
  2. use_raw_framerate      C consecutive frames: start + [0, 1, ..., C-1], start = floor(u (T - C))
  3. sampling_rate r != 0   every r-th frame, a span of r (C-1) frames: floor(linspace(s, s + r (C-1), C)),
                            s = floor(u (T - r (C-1))); evenly spaced (1.) if the span exceeds T
  4. default                C frames time_between_frames = tau seconds apart, a window of tau (C-1) seconds:
                            floor(T / duration * linspace(t, t + tau (C-1), C)), t = u (duration - tau (C-1));
                            evenly spaced (1.) if the window is longer than the video

u is one uniform draw in [0, 1) from `rng`; with no_randomness it is 0, so every clip starts at the first frame.
The published code honoured --no_randomness_dataloader in branch 2 only and always drew a random start in 3 and
4; we apply it to every branch, so that the flag makes the data deterministic as its name says.
"""

import numpy as np


def evenly_spaced(total_frames, num_frames):
    """floor(linspace(0, total_frames, num_frames)): num_frames indices spread over frames 0..total_frames."""
    return np.floor(np.linspace(0, total_frames, num_frames)).astype(np.int64)


def sample_frame_indices(frame_count, fps, num_frames, time_between_frames=1.0, sampling_rate=0.0,
                         use_raw_framerate=False, rng=None, no_randomness=False, duration=None):
    """(num_frames,) int64 frame indices into a video of `frame_count` frames at `fps`; see the module docstring.

    duration: the video's length in seconds (the container's duration); None takes frame_count / fps.
    rng: a numpy Generator, an int seed, or any object with .random() -> float in [0, 1); one draw is made per
    call (none when the rule needs no start, or with no_randomness). None draws from fresh OS entropy.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames {num_frames}: need at least one frame per clip")
    if frame_count < 1:
        raise ValueError(f"frame_count {frame_count}: the video has no frames")
    if duration is None:
        if not fps or fps <= 0:
            raise ValueError(f"fps {fps}: need a positive frame rate (or a duration) to place frames in time")
        duration = frame_count / fps
    total = frame_count - 1  # as published

    def draw():
        if no_randomness:
            return 0.0
        generator = rng if hasattr(rng, "random") else np.random.default_rng(rng)
        return float(generator.random())

    if total < num_frames:
        return evenly_spaced(total, num_frames)
    if use_raw_framerate:
        start = int(draw() * (total - num_frames))
        return start + np.arange(num_frames, dtype=np.int64)
    if sampling_rate:
        if sampling_rate < 0:
            raise ValueError(f"sampling_rate {sampling_rate}: must be positive (or 0 to space frames in time)")
        span = sampling_rate * (num_frames - 1)
        if span > total:
            return evenly_spaced(total, num_frames)
        start = int(draw() * (total - span))
        return np.floor(np.linspace(start, start + span, num_frames)).astype(np.int64)
    if time_between_frames <= 0:
        raise ValueError(f"time_between_frames {time_between_frames}: must be positive seconds")
    window = time_between_frames * (num_frames - 1)
    if window > duration:
        return evenly_spaced(total, num_frames)
    start_time = draw() * (duration - window)
    times = np.linspace(start_time, start_time + window, num_frames)
    # the window ends at or before `duration`, so indices stay <= total in exact arithmetic; clip float rounding
    return np.clip(np.floor(total / duration * times), 0, total).astype(np.int64)
