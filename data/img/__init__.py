"""Image data: the ADM centre-crop transform, offline and hub datasets, and the batch collator."""

from .datasets import ImageFiles, MnistDigits, NaturalImageCrops
from .hub import HUB_IMAGE_DATASETS, HubImages
from .splits import IMAGE_DATASETS, build_image_splits, image_collate
from .transforms import center_crop, denormalize, image_transform, to_rgb, to_tensor

__all__ = ["IMAGE_DATASETS", "HUB_IMAGE_DATASETS", "build_image_splits", "image_collate", "NaturalImageCrops",
           "MnistDigits", "ImageFiles", "HubImages", "center_crop", "denormalize", "image_transform", "to_rgb",
           "to_tensor"]
