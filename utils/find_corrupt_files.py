"""Find the videos below a dataset folder that cannot be decoded, and record them in the corrupt-file list.

    python utils/find_corrupt_files.py DATASET_DIR [LOG_PATH]

Opens every .mp4/.webm/.avi/.mov/.mkv below DATASET_DIR (recursively) and decodes its first and last frame with
decord, falling back to PyAV (data/vid/decoding.py). Failing files are appended, relative to DATASET_DIR, to
LOG_PATH (default DATASET_DIR/corrupt_files.txt), skipping those already listed; the video datasets leave the
listed files out (data/vid/datasets.py). Run it once before a long run so no worker meets a broken file mid-epoch.
The published script used ffprobe and OpenCV; this one needs neither.
"""

import os
import sys

from tqdm import tqdm

if not __package__:  # run as a script (python utils/find_corrupt_files.py): make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.vid.datasets import CORRUPT_LIST_NAME, CorruptFileList, find_videos  # noqa: E402
from data.vid.decoding import CorruptVideo, VideoFile  # noqa: E402
from utils.usage import Parser, check, input_path_problem, output_path_problem, run_entry_point  # noqa: E402


def check_video(path, backend="auto"):
    """None if the first and last frames of `path` decode, else the reason why not."""
    try:
        with VideoFile(path, backend) as video:
            video.frames([0, video.info.frame_count - 1])
    except CorruptVideo as error:
        return error.reason
    return None


def find_corrupt_files(dataset_dir, log_path=None, backend="auto", progress=True):
    """Check every video below `dataset_dir`; append the failing ones to `log_path`.

    Returns {"checked": n, "corrupt": [relative paths that fail, sorted], "added": [those newly written],
    "log_path": the list's path}.
    """
    if not os.path.isdir(dataset_dir):
        raise ValueError(f"{dataset_dir}: not a folder; pass the dataset's root folder (the --dataset_dir of training)")
    log = CorruptFileList(log_path or os.path.join(dataset_dir, CORRUPT_LIST_NAME), dataset_dir)
    paths = find_videos(os.path.abspath(dataset_dir))
    corrupt, added = [], []
    for path in tqdm(paths, desc="checking videos", unit="video", disable=not progress):
        reason = check_video(path, backend)
        if reason is not None:
            corrupt.append(log.relative(path))
            if log.add(path):
                added.append(log.relative(path))
                tqdm.write(f"unreadable: {log.relative(path)} ({reason})")
    return {"checked": len(paths), "corrupt": sorted(corrupt), "added": sorted(added), "log_path": log.path}


def main(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset_dir", help="root folder of the dataset (searched recursively for videos)")
    parser.add_argument("log_path", nargs="?", default=None,
                        help=f"corrupt-file list to append to (default DATASET_DIR/{CORRUPT_LIST_NAME})")
    parser.add_argument("--backend", choices=("auto", "decord", "pyav"), default="auto",
                        help="decoder: decord with PyAV fallback (auto), or only one of them")
    args = parser.parse_args(argv)
    check(input_path_problem("DATASET_DIR", args.dataset_dir, folder=True),
          args.log_path and output_path_problem("LOG_PATH", args.log_path, file=True))
    result = find_corrupt_files(args.dataset_dir, args.log_path, args.backend)
    print(f"{result['checked']} videos checked, {len(result['corrupt'])} unreadable, {len(result['added'])} newly "
          f"added to {result['log_path']}")
    return result


if __name__ == "__main__":
    run_entry_point(main)
