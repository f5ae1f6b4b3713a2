"""Video rollouts: condition on the first frames, predict the rest one frame at a time (docs/method.md §8.4).

Both models decode with the cached decoders of inference/decoders.py (the published rollout recomputed
the whole prefix for every frame); `use_cache=False` is that slow twin, and tests check both agree. The
EBT thinks about each new frame (System 2 options and best-of-N by energy through `inference`); its
prediction is fed back as the next observed frame. Metrics compare predicted with true features (the
encoder's space): MSE and SmoothL1 per generated frame, and for the first generated frame.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inference.decoders import EBTDecoder, TransformerDecoder
from model.vid.ebt import EBT_VID


def _full_prefix_prediction(model, prefix, inference):
    """The slow twin: rerun the model over the whole prefix (B, n, F) and take the last position."""
    if isinstance(model, EBT_VID):
        result = model.advanced_inference(prefix, inference) if inference is not None else model(prefix)
        return result.states[-1][:, -1]
    return model(prefix)[:, -1]


@torch.no_grad()
def rollout(model, features, condition_frames, total_frames=None, inference=None, use_cache=True, compile=False):
    """features (B, T, F) of real frames -> predicted features (B, total - k, F) of frames k..total-1, each
    predicted from the k real frames and the model's own earlier predictions (k = condition_frames)."""
    model.eval()
    total = features.shape[1] if total_frames is None else total_frames
    if not 0 < condition_frames < total:
        raise ValueError(f"condition on 1..{total - 1} frames (--infer_video_condition_frames) for a rollout of "
                         f"{total} frames (--infer_max_gen_len); got {condition_frames}")
    prefix, predicted = features[:, :condition_frames], []
    if use_cache:
        decoder = (EBTDecoder(model, total, inference, compile) if isinstance(model, EBT_VID)
                   else TransformerDecoder(model))
    new = prefix
    for _ in range(total - condition_frames):
        frame = decoder.next_logits(new) if use_cache else _full_prefix_prediction(model, prefix, inference)
        predicted.append(frame)
        new = frame[:, None]
        prefix = torch.cat([prefix, new], dim=1)
    return torch.stack(predicted, dim=1)


def rollout_metrics(predicted, true):
    """Per-frame and first-frame MSE / SmoothL1 in feature space. predicted, true (B, N, F)."""
    mse = (predicted.float() - true.float()).pow(2).mean(dim=(0, 2))
    smooth_l1 = F.smooth_l1_loss(predicted.float(), true.float(), reduction="none").mean(dim=(0, 2))
    return {"mse_loss": float(mse.mean()), "smooth_l1_loss": float(smooth_l1.mean()),
            "first_frame_mse_loss": float(mse[0]), "first_frame_smooth_l1_loss": float(smooth_l1[0]),
            "mse_per_frame": mse.tolist()}


def save_frame_strips(path, rows, gif_path=None):
    """PNG of frame strips: rows of (N, 3, H, W) frames in [0, 1] (e.g. real above predicted); and a GIF of
    the rows side by side over time when gif_path is given."""
    strips = [(r.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8) for r in rows]
    N, H, W, _ = strips[0].shape
    grid = np.full((len(strips) * (H + 2), N * (W + 2), 3), 255, dtype=np.uint8)
    for i, strip in enumerate(strips):
        for j, frame in enumerate(strip):
            grid[i * (H + 2):i * (H + 2) + H, j * (W + 2):j * (W + 2) + W] = frame
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
    if gif_path:
        frames = [Image.fromarray(np.concatenate([s[t] for s in strips], axis=1)) for t in range(N)]
        frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=250, loop=0)
    return path
