"""The data set names of every modality, in a module that imports nothing heavy: the command line checks
--dataset_name against them before torch, datasets or transformers are loaded."""

NLP_DATASETS = ("shakespeare", "bbc_news", "text", "pajama", "fineweb", "nlp_synthetic")
DOWNSTREAM_PREFIXES = ("gsm8k", "squad", "ai2arc", "bigbench_", "lambada", "planbench")
IMAGE_DATASETS = ("natural_images", "mnist", "image_folder", "coco_tiny", "coco_medium", "imagenet")
IMAGE_ALIASES = {"imagenet1k": "imagenet"}
VIDEO_DATASETS = ("moving_mnist", "video_folder", "ucf101", "k400", "something", "aggregate")
VIDEO_ALIASES = {"kinetics400": "k400", "smth": "something", "ssv2": "something"}


def is_downstream(name: str) -> bool:
    """Whether --dataset_name names a downstream benchmark (`gsm8k`, `ai2arc_easy`, `bigbench_<task>`, ...)."""
    return any(name.startswith(p) if p.endswith("_") else name == p or name.startswith(p + "_")
               for p in DOWNSTREAM_PREFIXES)
