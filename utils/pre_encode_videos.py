"""Pre-encode a video split with a frozen frame encoder, once, into a latent store (data/vid_latents.py).

    python utils/pre_encode_videos.py --dataset_name ucf101 --dataset_dir data/ucf101 --split train \\
        --backbone_type vae --vae_path stabilityai/sd-vae-ft-mse --image_dims 224 224 --context_length 15 \\
        --out_dir latents/ucf101_vae224_c15_train

The flags mirror train_model.py's, so the clips are the ones training would see: num_frames = --context_length + 1,
frames resized to --image_dims and normalised for the encoder (VAE and pixels: [-1, 1]; DINOv2: ImageNet
mean/std; --vae_normalization / --custom_image_normalization choose explicitly). Clips are sampled with no
randomness (each video's first window), so the store is reproducible: the random clip start of on-the-fly
training is frozen. Interrupted? Run the same command again: it resumes after the last complete shard, and it
refuses an --out_dir made with other settings.
"""
import argparse
import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.vid_latents import STORE_DTYPES, pre_encode, read_index  # noqa: E402
from model.vid.encoders import BACKBONE_TYPES, DEFAULT_VIDEO_VAE, build_frame_encoder  # noqa: E402
from utils.usage import (Parser, UsageError, check, device_problem, input_path_problem,  # noqa: E402
                         output_path_problem, run_entry_point, whole_number)

STAGES = {"train": "fit", "validation": "fit", "test": "test"}  # the builder stage that makes each split
SAMPLING_FLAGS = ("time_between_frames", "sampling_rate", "use_raw_framerate")  # passed on only when given


def build_parser():
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
               allow_abbrev=False)
    g = p.add_argument_group("data (as for train_model.py)")
    g.add_argument("--dataset_name", required=True, help="video dataset, as train_model.py --dataset_name")
    g.add_argument("--dataset_dir", default="", help="local data folder of the dataset")
    g.add_argument("--split", default="train", choices=list(STAGES), help="which split to encode")
    g.add_argument("--image_dims", type=whole_number(1), nargs=2, default=[224, 224], metavar=("H", "W"),
                   help="frame size")
    g.add_argument("--context_length", type=whole_number(1), required=True,
                   help="C: the model reads C frames and predicts the next, so clips have C + 1 frames")
    g.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=33, help="seed of the split, as in training")
    g.add_argument("--vae_normalization", action="store_true",
                   help="frames to [-1, 1] (the default for the vae and pixels backbones)")
    g.add_argument("--custom_image_normalization", action="store_true",
                   help="ImageNet normalisation followed by the per-dataset one (docs/method.md §9.4)")
    g.add_argument("--time_between_frames", type=float, default=None,
                   help="seconds between sampled frames (default: the dataset builder's)")
    g.add_argument("--sampling_rate", type=float, default=None,
                   help="frames between sampled frames (default: the dataset builder's)")
    g.add_argument("--use_raw_framerate", action="store_true", default=None, help="consecutive frames")

    g = p.add_argument_group("encoder (as for train_model.py)")
    g.add_argument("--backbone_type", required=True, choices=BACKBONE_TYPES, help="frozen frame encoder")
    g.add_argument("--vit_backbone_size", default="base",
                   help="dinov2: small | base | large | giant, a hub name or a local directory")
    g.add_argument("--vae_path", default=DEFAULT_VIDEO_VAE,
                   help="vae: a diffusers AutoencoderKL hub name or a local directory")
    g.add_argument("--sdxl_vae_standardization", action="store_true", help="vae: latents x 0.18215")
    g.add_argument("--pixel_pooling", type=whole_number(1), default=1,
                   help="pixels: average-pool frames by this factor first")

    g = p.add_argument_group("store")
    g.add_argument("--out_dir", required=True, help="folder of the store (index.json + shard_*.pt)")
    g.add_argument("--shard_size", type=whole_number(1), default=1024,
                   help="clips per shard file (the unit of resuming)")
    g.add_argument("--batch_size", type=whole_number(1), default=16, help="clips per encoder call")
    g.add_argument("--num_workers", type=whole_number(0), default=0, help="data-loader worker processes")
    g.add_argument("--dtype", default="float16", choices=list(STORE_DTYPES),
                   help="stored precision (float16: half the disk, ~5e-4 relative rounding)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where to encode")
    return p


def check_args(args):
    """Stop (UsageError, one line) on arguments that cannot work, before the encoder is built."""
    if args.vae_normalization and args.custom_image_normalization:
        raise UsageError("--vae_normalization and --custom_image_normalization exclude each other; give one")
    check(args.dataset_dir and input_path_problem("--dataset_dir", args.dataset_dir, folder=True),
          output_path_problem("--out_dir", args.out_dir), device_problem("--device", args.device))


def frame_normalization(args, encoder):
    if args.custom_image_normalization:
        return "custom"
    if args.vae_normalization:
        return "vae"
    return encoder.input_normalization


def build_split(builder, args, normalization):
    """The requested split, built as training builds it but with no randomness."""
    accepted = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    sampling = {flag: getattr(args, flag) for flag in SAMPLING_FLAGS if getattr(args, flag) is not None}
    for flag in sampling:
        if flag not in accepted and not takes_any:
            raise UsageError(f"--{flag}: the video dataset builder does not take this option")
    splits = builder(args.dataset_name, args.context_length + 1, args.image_dims, args.seed,
                     dataset_dir=args.dataset_dir or None, normalization=normalization, no_randomness=True,
                     stage=STAGES[args.split], **sampling)
    dataset = dict(zip(("train", "validation", "test"), splits, strict=True))[args.split]
    if dataset is None:
        raise UsageError(f"--dataset_name {args.dataset_name} has no {args.split} split")
    return dataset, sampling


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_args(args)
    from data.vid.splits import build_video_splits  # written alongside; imported here so this module loads alone

    encoder = build_frame_encoder(args.backbone_type, args.image_dims, args.vit_backbone_size, args.vae_path,
                                  args.sdxl_vae_standardization, args.pixel_pooling).to(args.device)
    normalization = frame_normalization(args, encoder)
    dataset, sampling = build_split(build_video_splits, args, normalization)
    description = {"dataset_name": args.dataset_name, "dataset_dir": os.path.abspath(args.dataset_dir)
                   if args.dataset_dir else None, "split": args.split, "num_frames": args.context_length + 1,
                   "image_dims": list(args.image_dims), "seed": args.seed, "normalization": normalization,
                   "no_randomness": True, **sampling}
    print(f"encoding {len(dataset)} clips of {args.split} {args.dataset_name} with {encoder.name} "
          f"(F = {encoder.feature_dim}) into {args.out_dir}")
    existing = read_index(args.out_dir)  # a resumed run starts the bar at the clips already stored
    done = sum(shard["num_items"] for shard in existing["shards"]) if existing else 0
    with tqdm(total=len(dataset), initial=done, unit="clip", desc=f"{args.dataset_name} {args.split}") as bar:
        def on_shard(info):
            bar.set_postfix(shards=f"{info['shard'] + 1}/{info['num_shards']}")
        index = pre_encode(dataset, encoder, args.out_dir, description, shard_size=args.shard_size,
                           batch_size=args.batch_size, num_workers=args.num_workers, dtype=args.dtype,
                           progress=bar.update, on_shard_written=on_shard)
    print(f"{args.out_dir}: {index['num_items']} clips x {index['num_frames']} frames x {index['feature_dim']} "
          f"features in {len(index['shards'])} shards ({index['dtype']})")
    return index


if __name__ == "__main__":
    run_entry_point(main)

