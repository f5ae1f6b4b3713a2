"""Image models: the bidirectional EBT energy network, the DiT baseline and the Gaussian diffusion they share."""
from model.img.backbone import IMAGE_MODEL_SIZES, image_model_size
from model.img.bidirectional_ebt import BidirectionalEBT
from model.img.diffusion import GaussianDiffusion, diffusion_for_noise_level
from model.img.dit import DiT

__all__ = ["IMAGE_MODEL_SIZES", "image_model_size", "BidirectionalEBT", "DiT", "GaussianDiffusion",
           "diffusion_for_noise_level"]
