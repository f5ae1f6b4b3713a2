"""Every model of the codebase by (task, model name): build one from hyperparameters, or load a trained one.

The trainer, the inference scripts and the experiments all build models here; the keys are those of
`model.config.CONFIGS`, the configs of what each model reads.
"""
import torch

from model.config import CONFIGS, config_class, model_key
from model.img.dit_denoise import DiT_IMG_Denoise
from model.img.dit_t2i import DiT_IMG_T2I
from model.img.ebt_denoise import EBT_IMG_Denoise
from model.img.ebt_t2i import EBT_IMG_T2I
from model.nlp.baseline_transformer import Baseline_Transformer_NLP
from model.nlp.ebt import EBT_NLP
from model.vid.baseline_transformer import Baseline_Transformer_VID
from model.vid.ebt import EBT_VID
from model.vid.encoders import build_frame_encoder

MODELS = {("NLP", "ebt"): EBT_NLP, ("NLP", "baseline_transformer"): Baseline_Transformer_NLP,
          ("IMG", "ebt"): EBT_IMG_Denoise, ("IMG", "dit"): DiT_IMG_Denoise,
          ("IMG-t2i", "ebt"): EBT_IMG_T2I, ("IMG-t2i", "dit"): DiT_IMG_T2I,
          ("VID", "ebt"): EBT_VID, ("VID", "baseline_transformer"): Baseline_Transformer_VID}


def register_model(task, model_name, model_class, config):
    """Add a model: (task, --model_name) -> its class and its config (the options it reads). A new modality also
    registers its task (tasks.register_task); example_code/toy_regression_ebt.py does both."""
    MODELS[task, model_name], CONFIGS[task, model_name] = model_class, config


def video_encoder_for(hp):
    """The frozen frame encoder of the hyperparameters (a dict), with its feature size, the space the video models
    predict in, recorded in them where they do not say it yet."""
    encoder = build_video_encoder(hp)
    if hp.get("feature_dim") is None:
        hp["feature_dim"] = encoder.feature_dim
    return encoder


def build_video_encoder(hp):
    """The frozen frame encoder of --backbone_type (pixels, vae, dinov2)."""
    return build_frame_encoder(hp["backbone_type"], list(hp["image_dims"]), hp["vit_backbone_size"], hp["vae_path"],
                               hp["sdxl_vae_standardization"], hp["pixel_pooling"])


def build_model(hp, video_encoder=None):
    """The model the hyperparameters choose, built from them (video: with its frozen frame encoder, built here
    unless given). ValueError for a (modality, model) pair that has no model."""
    config_class(hp)  # the one message for a model that does not exist
    model_class = MODELS[model_key(hp)]
    if hp["modality"] == "VID":
        if video_encoder is None:
            hp = dict(hp)
            video_encoder = video_encoder_for(hp)
        return model_class(hp, encoder=video_encoder)
    return model_class(hp)


def load_trained_model(path):
    """(model in eval mode, its hyperparameters) from a training checkpoint of this project; ValueError if the file
    is not one. Video models get their frozen encoder built from the hyperparameters."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        hp = checkpoint["hyper_parameters"]
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"{path} is not a checkpoint of this project ({type(error).__name__}: {error})") from error
    model = build_model(hp)
    model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()
                           if k.startswith("model.")})
    return model.eval(), hp
