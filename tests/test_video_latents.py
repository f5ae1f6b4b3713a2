"""Video frame encoders (tiny random SD-style VAE and DINOv2 saved to disk, raw pixels) and the latent
pre-encoding store: read-back equals on-the-fly encoding, resuming after an interruption, refusals."""
import json
import os
import sys
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import Dinov2Config, Dinov2Model

from data.vid_latents import LatentVideoDataset, pre_encode, read_index, shard_file
from model.frozen import FollowsDevice
from model.vid.encoders import (DINOV2_MODELS, DINOv2FrameEncoder, PixelFrameEncoder, VAEFrameEncoder,
                                build_frame_encoder, dinov2_model_name, feature_projection)
from utils import pre_encode_videos

FRAMES, SIZE = 3, 32  # clips of 3 frames of 32 x 32
VAE_F = 4 * 4 * 4  # 4 latent channels x (32/8)^2
DINO_WIDTH = 16
FP16_RTOL = 2 ** -11  # float16 keeps 11 significant bits: relative rounding error at most 2^-11


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    """A 1-layer DINOv2 of width 16 on 32 x 32 images in 8 x 8 patches."""
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=DINO_WIDTH, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                          image_size=SIZE, patch_size=8)
    path = tmp_path_factory.mktemp("dino")
    Dinov2Model(config).save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def vae_encoder(vae_dir):
    return VAEFrameEncoder(SIZE, vae_dir, sdxl_vae_standardization=True)


class SyntheticVideos(Dataset):
    """Deterministic clips: item i is always the same (C, 3, H, W) tensor in [-1, 1]."""

    def __init__(self, length=7, frames=FRAMES, size=SIZE, offset=0):
        self.length, self.frames, self.size, self.offset = length, frames, size, offset

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        generator = torch.Generator().manual_seed(1000 + i + self.offset)
        return {"video": torch.rand(self.frames, 3, self.size, self.size, generator=generator) * 2 - 1}


class CountingEncoder:
    """An encoder that counts the clips it encodes and can fail after a number of calls (an interruption)."""

    def __init__(self, encoder, fail_after_calls=None):
        self.encoder, self.fail_after_calls = encoder, fail_after_calls
        self.name, self.feature_dim = encoder.name, encoder.feature_dim
        self.calls = self.clips = 0

    def encode(self, videos):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.clips += len(videos)
        return self.encoder.encode(videos)


def all_videos(dataset):
    return torch.stack([dataset[i]["video"] for i in range(len(dataset))])  # (N, C, 3, H, W)


def stored_latents(out_dir):
    store = LatentVideoDataset(out_dir)
    return torch.stack([store[i]["latents"] for i in range(len(store))])  # (N, C, F)


DESCRIPTION = {"dataset_name": "synthetic", "split": "train", "num_frames": FRAMES, "no_randomness": True}


# ----------------------------------------------------------------------------- encoders

def test_vae_encoder_flattens_scaled_latent_means_and_decodes(vae_dir, vae_encoder):
    assert vae_encoder.feature_dim == VAE_F and vae_encoder.input_normalization == "vae"
    vae = vae_encoder.vae
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    frames = torch.rand(2, FRAMES, 3, SIZE, SIZE) * 2 - 1
    features = vae_encoder.encode(frames)
    assert features.shape == (2, FRAMES, VAE_F) and features.dtype == torch.float32 and not features.requires_grad
    latents = vae.encode(frames.reshape(-1, 3, SIZE, SIZE)).latent_dist.mean  # (B*C, 4, 4, 4)
    torch.testing.assert_close(features, (latents * 0.18215).reshape(2, FRAMES, VAE_F))
    unscaled = VAEFrameEncoder(SIZE, vae_dir, sdxl_vae_standardization=False)
    torch.testing.assert_close(unscaled.encode(frames) * 0.18215, features)
    assert unscaled.name != vae_encoder.name and "scale=0.18215" in vae_encoder.name
    decoded = vae_encoder.decode(features)
    assert decoded.shape == frames.shape and decoded.min() >= -1 and decoded.max() <= 1
    torch.testing.assert_close(decoded.reshape(-1, 3, SIZE, SIZE), vae.decode(latents).sample.clamp(-1, 1))
    torch.testing.assert_close(unscaled.decode(unscaled.encode(frames)), decoded)


def test_vae_feature_size_is_3136_at_224_and_sizes_must_be_multiples_of_8(vae_dir):
    encoder = build_frame_encoder("vae", [224, 224], vae_path=vae_dir)
    assert encoder.feature_dim == 3136
    assert encoder.encode(torch.zeros(1, 1, 3, 224, 224)).shape == (1, 1, 3136)
    with pytest.raises(ValueError, match="--image_dims 36 36: the VAE downsamples by 8"):
        VAEFrameEncoder(36, vae_dir)
    with pytest.raises(ValueError, match=r"expects \(B, C, 3, 224, 224\)"):
        encoder.encode(torch.zeros(1, 3, 224, 224))


def test_dinov2_encoder_gives_the_layernormed_cls_token_of_any_width(dino_dir):
    encoder = DINOv2FrameEncoder(SIZE, dino_dir)
    dino = encoder.dino
    assert not dino.training and not any(p.requires_grad for p in dino.parameters())
    assert encoder.feature_dim == DINO_WIDTH and encoder.input_normalization == "imagenet"
    frames = torch.randn(2, FRAMES, 3, SIZE, SIZE)
    features = encoder.encode(frames)
    assert features.shape == (2, FRAMES, DINO_WIDTH)
    hidden = dino.encoder(dino.embeddings(frames.reshape(-1, 3, SIZE, SIZE))).last_hidden_state
    torch.testing.assert_close(features.reshape(-1, DINO_WIDTH), dino.layernorm(hidden)[:, 0])
    with pytest.raises(NotImplementedError, match="dinov2 features cannot be decoded"):
        encoder.decode(features)
    # the model width is free: a down-projection reads the features (the published assert made this impossible)
    assert isinstance(feature_projection(DINO_WIDTH, DINO_WIDTH), nn.Identity)
    projection = feature_projection(DINO_WIDTH, 48)
    assert isinstance(projection, nn.Linear) and projection(features).shape == (2, FRAMES, 48)


def test_dinov2_size_table_and_name_resolution(dino_dir):
    assert DINOV2_MODELS == {"small": "facebook/dinov2-small", "base": "facebook/dinov2-base",
                             "large": "facebook/dinov2-large", "giant": "facebook/dinov2-giant"}
    assert dinov2_model_name("giant") == "facebook/dinov2-giant"
    assert dinov2_model_name("owner/some-dino") == "owner/some-dino" and dinov2_model_name(dino_dir) == dino_dir
    with pytest.raises(ValueError, match="vit_backbone_size 'huge': choose one of small, base, large, giant"):
        build_frame_encoder("dinov2", SIZE, vit_backbone_size="huge")


def test_pixels_round_trip_exactly_and_pool(tmp_path):
    assert PixelFrameEncoder(64).feature_dim == 12288  # Moving MNIST at 64 x 64: 3 * 64 * 64
    assert PixelFrameEncoder(64, pooling=2).feature_dim == 3 * 32 * 32
    frames = torch.rand(2, FRAMES, 3, SIZE, SIZE) * 2 - 1
    encoder = build_frame_encoder("pixels", [SIZE, SIZE])
    assert torch.equal(encoder.decode(encoder.encode(frames)), frames) and encoder.modules == ()
    pooled = PixelFrameEncoder(SIZE, pooling=4)
    features = pooled.encode(frames)
    assert features.shape == (2, FRAMES, 3 * 8 * 8)
    torch.testing.assert_close(features[0, 0, 0], frames[0, 0, 0, :4, :4].mean())
    decoded = pooled.decode(features)
    assert decoded.shape == frames.shape and torch.equal(decoded[0, 0, 0, :4, :4], features[0, 0, 0].expand(4, 4))
    torch.testing.assert_close(pooled.encode(decoded), features)  # decode repeats each pooled pixel over its block
    with pytest.raises(ValueError, match="pixel pooling 3 must be a positive divisor"):
        PixelFrameEncoder(SIZE, pooling=3)


def test_encoders_stay_out_of_the_owning_models_parameters_and_state_dict(vae_encoder):
    class VideoModel(FollowsDevice, nn.Module):
        def __init__(self, encoders):
            super().__init__()
            self.encoders = encoders  # plain object: not a submodule
            self.down = feature_projection(encoders.feature_dim, 8)

    model = VideoModel(vae_encoder)
    assert set(model.state_dict()) == {"down.weight", "down.bias"}
    assert sum(p.numel() for p in model.parameters()) == VAE_F * 8 + 8
    model.to(torch.float64)  # FollowsDevice moves the frozen modules along
    assert vae_encoder.vae.dtype == torch.float64
    model.to(torch.float32)
    assert vae_encoder.vae.dtype == torch.float32 and vae_encoder.device == torch.device("cpu")


def test_load_failures_name_what_was_tried_and_suggest_a_local_directory(tmp_path, vae_dir):
    with pytest.raises(OSError, match=r"(?s)could not load the VAE.*nowhere.*local directory"):
        build_frame_encoder("vae", SIZE, vae_path=str(tmp_path / "nowhere"))
    with pytest.raises(OSError, match=r"(?s)DINOv2 \(vit_backbone_size\) 'base'.*dinov2-base.*local directory"):
        build_frame_encoder("dinov2", SIZE, vit_backbone_size="base")  # tests run with HF_HUB_OFFLINE=1
    with pytest.raises(OSError, match=r"(?s)DINOv2.*local directory"):
        build_frame_encoder("dinov2", SIZE, vit_backbone_size=vae_dir)  # a directory without a DINOv2 in it
    with pytest.raises(ValueError, match="--backbone_type 'clip': choose one of vae, dinov2, pixels"):
        build_frame_encoder("clip", SIZE)


# ----------------------------------------------------------------------------- the store

def test_pre_encoded_store_reads_back_the_on_the_fly_encoding(tmp_path, vae_encoder):
    dataset = SyntheticVideos(length=7)
    index = pre_encode(dataset, vae_encoder, str(tmp_path / "half"), DESCRIPTION, shard_size=3, batch_size=2)
    assert index["complete"] and [s["num_items"] for s in index["shards"]] == [3, 3, 1]
    assert sorted(os.listdir(tmp_path / "half")) == ["index.json", *(shard_file(k) for k in range(3))]
    on_disk = read_index(str(tmp_path / "half"))
    assert on_disk == index and on_disk["dtype"] == "float16" and on_disk["dataset"] == DESCRIPTION
    assert (on_disk["encoder"], on_disk["feature_dim"], on_disk["num_frames"], on_disk["num_items"]) == (
        vae_encoder.name, VAE_F, FRAMES, 7)

    store = LatentVideoDataset(str(tmp_path / "half"))
    assert len(store) == 7 and store.feature_dim == VAE_F and store.num_frames == FRAMES
    item = store[5]
    assert set(item) == {"latents"} and item["latents"].shape == (FRAMES, VAE_F)
    assert item["latents"].dtype == torch.float32
    expected = vae_encoder.encode(all_videos(dataset))  # (7, C, F), float32
    latents = stored_latents(str(tmp_path / "half"))
    torch.testing.assert_close(latents, expected, rtol=FP16_RTOL, atol=1e-7)
    assert torch.equal(latents, expected.half().float())  # exactly the float16 rounding, nothing else
    torch.testing.assert_close(store[-1]["latents"], latents[6])
    batch = next(iter(DataLoader(store, batch_size=4)))
    assert batch["latents"].shape == (4, FRAMES, VAE_F)
    store.check_encoder(vae_encoder)
    with pytest.raises(ValueError, match="was encoded with vae"):
        store.check_encoder(PixelFrameEncoder(SIZE))

    pre_encode(dataset, vae_encoder, str(tmp_path / "full"), DESCRIPTION, shard_size=4, batch_size=3,
               dtype=torch.float32)
    torch.testing.assert_close(stored_latents(str(tmp_path / "full")), expected)


def test_pixels_store_in_float32_decodes_back_to_the_frames(tmp_path):
    dataset, encoder = SyntheticVideos(length=5), PixelFrameEncoder(SIZE)
    pre_encode(dataset, encoder, str(tmp_path), DESCRIPTION, shard_size=2, batch_size=2, dtype="float32")
    assert torch.equal(encoder.decode(stored_latents(str(tmp_path))), all_videos(dataset))


def test_an_interrupted_run_resumes_after_the_last_complete_shard(tmp_path, vae_encoder):
    dataset = SyntheticVideos(length=10)
    reference = str(tmp_path / "reference")
    pre_encode(dataset, vae_encoder, reference, DESCRIPTION, shard_size=3, batch_size=2)

    out = str(tmp_path / "resumed")
    written = []

    def stop_after_two_shards(info):
        written.append(info)
        if len(written) == 2:
            raise KeyboardInterrupt("simulated interruption")

    first = CountingEncoder(vae_encoder)
    with pytest.raises(KeyboardInterrupt):
        pre_encode(dataset, first, out, DESCRIPTION, shard_size=3, batch_size=2, on_shard_written=stop_after_two_shards)
    assert [info["shard"] for info in written] == [0, 1] and written[0]["num_shards"] == 4
    index = read_index(out)
    assert not index["complete"] and len(index["shards"]) == 2
    with pytest.raises(RuntimeError, match=r"incomplete \(2 of 4 shards\).*rerun the pre-encoding command"):
        LatentVideoDataset(out)
    done_at = {k: os.stat(os.path.join(out, shard_file(k))).st_mtime_ns for k in range(2)}

    # a second interruption in the middle of a shard (the encoder fails on its 2nd batch) loses only that shard
    with pytest.raises(KeyboardInterrupt):
        pre_encode(dataset, CountingEncoder(vae_encoder, fail_after_calls=1), out, DESCRIPTION, shard_size=3,
                   batch_size=2)
    assert len(read_index(out)["shards"]) == 2 and not any(".tmp" in name for name in os.listdir(out))

    second = CountingEncoder(vae_encoder)
    index = pre_encode(dataset, second, out, DESCRIPTION, shard_size=3, batch_size=2)
    assert index["complete"] and second.clips == 10 - 2 * 3  # shards 0 and 1 were not encoded again
    assert {k: os.stat(os.path.join(out, shard_file(k))).st_mtime_ns for k in range(2)} == done_at
    for k in range(4):
        assert torch.equal(torch.load(os.path.join(out, shard_file(k))), torch.load(os.path.join(reference,
                                                                                                 shard_file(k))))
    assert torch.equal(stored_latents(out), stored_latents(reference))

    third = CountingEncoder(vae_encoder)
    assert pre_encode(dataset, third, out, DESCRIPTION, shard_size=3, batch_size=2) == index
    assert third.calls == 0  # a complete store is left as it is


def test_a_store_is_never_extended_with_other_settings(tmp_path, vae_dir, vae_encoder):
    dataset, out = SyntheticVideos(length=4), str(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        pre_encode(dataset, CountingEncoder(vae_encoder, fail_after_calls=1), out, DESCRIPTION, shard_size=2,
                   batch_size=2)
    with pytest.raises(ValueError, match=r"(?s)refusing to mix latents.*encoder: stored 'vae\(.*scale=0.18215.*"
                                         r"now 'vae\(.*scale=1,.*another --out_dir"):
        pre_encode(dataset, VAEFrameEncoder(SIZE, vae_dir), out, DESCRIPTION, shard_size=2, batch_size=2)
    with pytest.raises(ValueError, match=r"(?s)refusing to mix.*dataset: stored .*'split': 'train'.*'validation'"):
        pre_encode(dataset, vae_encoder, out, {**DESCRIPTION, "split": "validation"}, shard_size=2, batch_size=2)
    with pytest.raises(ValueError, match=r"(?s)num_frames: stored 3, now 4"):
        pre_encode(SyntheticVideos(length=4, frames=4), vae_encoder, out, DESCRIPTION, shard_size=2, batch_size=2)
    with pytest.raises(ValueError, match=r"(?s)shard_size: stored 2, now 3.*dtype: stored 'float16', now 'float32'"):
        pre_encode(dataset, vae_encoder, out, DESCRIPTION, shard_size=3, batch_size=2, dtype=torch.float32)
    pre_encode(dataset, vae_encoder, out, DESCRIPTION, shard_size=2, batch_size=2)  # the same settings resume
    assert LatentVideoDataset(out).index["complete"]


def test_missing_store_and_bad_items_are_refused_with_a_message(tmp_path, vae_encoder):
    with pytest.raises(FileNotFoundError, match="no latent store in .*utils/pre_encode_videos.py"):
        LatentVideoDataset(str(tmp_path / "none"))

    class Frames(SyntheticVideos):
        def __getitem__(self, i):
            return super().__getitem__(i)["video"]

    with pytest.raises(TypeError, match=r"must be a dict with a 'video' tensor \(C, 3, H, W\)"):
        pre_encode(Frames(), vae_encoder, str(tmp_path / "bad"), DESCRIPTION)
    with pytest.raises(ValueError, match="dataset is empty"):
        pre_encode(SyntheticVideos(length=0), vae_encoder, str(tmp_path / "empty"), DESCRIPTION)


# ----------------------------------------------------------------------------- the command

@pytest.fixture
def fake_video_builder(monkeypatch):
    """Stands in for data.vid.splits.build_video_splits: records its arguments, returns synthetic splits."""
    calls = []

    def build_video_splits(dataset_name, num_frames, image_size, seed, dataset_dir=None, normalization="vae",
                           no_randomness=False, stage=None, time_between_frames=None):
        calls.append(dict(dataset_name=dataset_name, num_frames=num_frames, image_size=image_size, seed=seed,
                          dataset_dir=dataset_dir, normalization=normalization, no_randomness=no_randomness,
                          stage=stage, time_between_frames=time_between_frames))
        size = image_size[0]
        splits = (SyntheticVideos(6, num_frames, size), SyntheticVideos(3, num_frames, size, offset=100))
        return (*splits, None) if stage == "fit" else (None, None, SyntheticVideos(2, num_frames, size, offset=200))

    module = types.ModuleType("data.vid.splits")
    module.build_video_splits = build_video_splits
    monkeypatch.setitem(sys.modules, "data.vid.splits", module)
    return calls


def test_command_pre_encodes_a_split_with_the_training_flags(tmp_path, vae_dir, fake_video_builder, capsys):
    out = str(tmp_path / "store")
    argv = ["--dataset_name", "synthetic", "--split", "validation", "--backbone_type", "vae", "--vae_path", vae_dir,
            "--sdxl_vae_standardization", "--image_dims", "32", "32", "--context_length", "2", "--out_dir", out,
            "--shard_size", "2", "--batch_size", "2", "--time_between_frames", "0.25", "--device", "cpu"]
    index = pre_encode_videos.main(argv)
    assert fake_video_builder[-1] == dict(dataset_name="synthetic", num_frames=3, image_size=[32, 32], seed=33,
                                          dataset_dir=None, normalization="vae", no_randomness=True, stage="fit",
                                          time_between_frames=0.25)
    assert index["complete"] and index["num_items"] == 3 and index["num_frames"] == 3
    assert index["dataset"]["split"] == "validation" and index["dataset"]["time_between_frames"] == 0.25
    encoder = VAEFrameEncoder(SIZE, vae_dir, sdxl_vae_standardization=True)
    store = LatentVideoDataset(out)
    store.check_encoder(encoder)
    validation = SyntheticVideos(3, 3, SIZE, offset=100)
    torch.testing.assert_close(stored_latents(out), encoder.encode(all_videos(validation)), rtol=FP16_RTOL, atol=1e-7)
    assert "3 clips x 3 frames x 64 features in 2 shards (float16)" in capsys.readouterr().out

    with pytest.raises(ValueError, match="refusing to mix"):  # the same folder for another split
        pre_encode_videos.main([*argv[:3], "train", *argv[4:]])
    with open(os.path.join(out, "index.json")) as f:
        assert json.load(f)["num_items"] == 3


def test_command_normalises_frames_for_the_backbone_and_checks_flags(tmp_path, dino_dir, fake_video_builder):
    common = ["--dataset_name", "synthetic", "--image_dims", "32", "32", "--context_length", "1", "--device", "cpu"]
    index = pre_encode_videos.main([*common, "--backbone_type", "dinov2", "--vit_backbone_size", dino_dir,
                                    "--split", "test", "--out_dir", str(tmp_path / "dino")])
    assert fake_video_builder[-1]["normalization"] == "imagenet" and fake_video_builder[-1]["stage"] == "test"
    assert index["feature_dim"] == DINO_WIDTH and index["num_items"] == 2 and index["num_frames"] == 2
    index = pre_encode_videos.main([*common, "--backbone_type", "pixels", "--pixel_pooling", "2", "--dtype", "float32",
                                    "--out_dir", str(tmp_path / "pixels")])
    assert fake_video_builder[-1]["normalization"] == "vae" and index["feature_dim"] == 3 * 16 * 16
    assert torch.equal(stored_latents(str(tmp_path / "pixels")),
                       PixelFrameEncoder(SIZE, 2).encode(all_videos(SyntheticVideos(6, 2, SIZE))))
    with pytest.raises(SystemExit, match="--sampling_rate: the video dataset builder does not take this option"):
        pre_encode_videos.main([*common, "--backbone_type", "pixels", "--sampling_rate", "2",
                                "--out_dir", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="exclude each other"):
        pre_encode_videos.main([*common, "--backbone_type", "pixels", "--vae_normalization",
                                "--custom_image_normalization", "--out_dir", str(tmp_path / "other")])
