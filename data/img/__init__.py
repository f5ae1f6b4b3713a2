"""Image data: the ADM centre-crop transform, offline and hub datasets, and the batch collator."""
import importlib

# name -> submodule: imported on first use, so that importing one light submodule (or data.names) does not
# load torch, datasets and transformers
_LAZY = {
    "ImageFiles": "datasets",
    "MnistDigits": "datasets",
    "NaturalImageCrops": "datasets",
    "HUB_IMAGE_DATASETS": "hub",
    "HubImages": "hub",
    "IMAGE_DATASETS": "splits",
    "build_image_splits": "splits",
    "image_collate": "splits",
    "center_crop": "transforms",
    "denormalize": "transforms",
    "image_transform": "transforms",
    "to_rgb": "transforms",
    "to_tensor": "transforms",
}

__all__ = ["IMAGE_DATASETS", "HUB_IMAGE_DATASETS", "build_image_splits", "image_collate", "NaturalImageCrops",
           "MnistDigits", "ImageFiles", "HubImages", "center_crop", "denormalize", "image_transform", "to_rgb",
           "to_tensor"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
