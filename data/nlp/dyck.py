"""Dyck-language completion data, generated offline in the BIG-bench `dyck_languages` row schema.

BIG-bench's dyck_languages task (the paper's System 2 ablation set) gives a prefix of a balanced bracket sequence
and asks for the brackets that close it. This generator writes such rows, {"inputs": "([{", "targets": ["}])"]},
as train/validation .jsonl files that `--dataset_name bigbench_dyck_languages --dataset_dir <folder>` reads like a
local copy of tasksource/bigbench. Brackets are written without spaces (BIG-bench separates them) so that a byte
tokenizer spends one token per bracket.

A word is a balanced sequence of `length` brackets (an even number in [min_length, max_length]) whose nesting never
exceeds `max_depth` and reaches at least `min_depth`; it is cut at a random point of its final run of closing
brackets: the input is the part before the cut, the target the closing brackets after it. The out-of-distribution
folder holds longer and deeper words (--ood_* knobs) than any training word, the held-out test of generalisation.

    python -m data.nlp.dyck --out_dir data_dyck                  # 20000 train, 500 validation, 500 OOD rows
    python train_model.py ... --dataset_name bigbench_dyck_languages --dataset_dir data_dyck
    # data_dyck/ood/validation.jsonl: the out-of-distribution rows (pass --dataset_dir data_dyck/ood to evaluate)
"""
import argparse
import json
import os
import random
import sys
from dataclasses import asdict, dataclass

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from utils.usage import Parser, check, output_path_problem, run_entry_point, whole_number  # noqa: E402

BRACKETS = ("()", "[]", "{}", "<>")


@dataclass(frozen=True)
class DyckShape:
    """Which words a split draws from: bracket kinds, word length range (brackets) and nesting depth range."""
    kinds: int = 3
    min_length: int = 4
    max_length: int = 16
    min_depth: int = 1
    max_depth: int = 4

    def problem(self, name="") -> "str | None":
        """Why these knobs cannot give a word, or None."""
        flag = f"--{name}" if name else "--"
        if self.min_length < 2 or self.max_length < self.min_length:
            return f"{flag}min_length {self.min_length} / {flag}max_length {self.max_length}: need 2 <= min <= max"
        if self.max_length // 2 * 2 < max(self.min_length, 2 * self.min_depth):
            return (f"{flag}max_length {self.max_length}: no even length in [{self.min_length}, {self.max_length}] "
                    f"reaches depth {self.min_depth} ({flag}min_depth); raise {flag}max_length")
        if self.min_depth < 1 or self.max_depth < self.min_depth:
            return f"{flag}min_depth {self.min_depth} / {flag}max_depth {self.max_depth}: need 1 <= min <= max"
        return None


def dyck_word(rng: random.Random, shape: DyckShape) -> str:
    """A random balanced word of the shape: an even length drawn uniformly, then brackets left to right, opening
    with probability 1/2 where both opening and closing keep the word completable within the depth limit; words
    that stay shallower than min_depth are drawn again."""
    lengths = [n for n in range(shape.min_length, shape.max_length + 1)
               if n % 2 == 0 and n >= 2 * shape.min_depth]
    pairs = BRACKETS[:shape.kinds]
    while True:
        length, stack, out, deepest = rng.choice(lengths), [], [], 0
        for position in range(length):
            left = length - position
            can_open = len(stack) < shape.max_depth and len(stack) + 1 <= left - 1
            must_open = not stack
            if must_open or (can_open and rng.random() < 0.5):
                pair = rng.choice(pairs)
                stack.append(pair[1])
                out.append(pair[0])
                deepest = max(deepest, len(stack))
            else:
                out.append(stack.pop())
        if deepest >= shape.min_depth:
            return "".join(out)


def completion_row(rng: random.Random, word: str) -> dict:
    """`word` cut inside its final run of closing brackets: the prefix, and the brackets that close it (a
    tasksource/bigbench row). Prefix + target is the word, so every row has the word's length and depth."""
    openers = {open_ for open_, _ in BRACKETS}
    last_open = max(i for i, bracket in enumerate(word) if bracket in openers)
    cut = rng.randrange(last_open + 1, len(word))
    return {"inputs": word[:cut], "targets": [word[cut:]], "multiple_choice_targets": [],
            "multiple_choice_scores": []}


def completion_rows(rng, shape, count, exclude=frozenset()):
    """`count` distinct rows of the shape whose inputs are not in `exclude`."""
    rows, seen = [], set(exclude)
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"only {len(rows)} distinct prefixes of {count} asked for exist in words of this shape "
                             f"({shape}); ask for fewer rows or allow longer words")
        row = completion_row(rng, dyck_word(rng, shape))
        if row["inputs"] not in seen:
            seen.add(row["inputs"])
            rows.append(row)
    return rows


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def generate(out_dir, shape, ood_shape, train_rows, validation_rows, ood_rows, seed):
    """Write <out_dir>/{train,validation}.jsonl (in distribution) and <out_dir>/ood/validation.jsonl; validation and
    OOD prefixes never occur in train. Returns the folder's description (also written as dyck.json)."""
    rng = random.Random(seed)
    validation = completion_rows(rng, shape, validation_rows)
    train = completion_rows(rng, shape, train_rows, exclude={r["inputs"] for r in validation})
    ood = completion_rows(rng, ood_shape, ood_rows, exclude={r["inputs"] for r in train + validation})
    os.makedirs(os.path.join(out_dir, "ood"), exist_ok=True)
    write_jsonl(os.path.join(out_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(out_dir, "validation.jsonl"), validation)
    write_jsonl(os.path.join(out_dir, "ood", "validation.jsonl"), ood)
    description = {"shape": asdict(shape), "ood_shape": asdict(ood_shape), "seed": seed,
                   "rows": {"train": len(train), "validation": len(validation), "ood": len(ood)}}
    with open(os.path.join(out_dir, "dyck.json"), "w") as f:
        json.dump(description, f, indent=1)
    return description


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True, help="folder for train.jsonl, validation.jsonl and ood/")
    parser.add_argument("--kinds", type=whole_number(1, len(BRACKETS)), default=3, help="bracket kinds: ( [ { <")
    parser.add_argument("--min_length", type=whole_number(2), default=4, help="brackets per word, in distribution")
    parser.add_argument("--max_length", type=whole_number(2), default=16)
    parser.add_argument("--min_depth", type=whole_number(1), default=1, help="nesting reached, in distribution")
    parser.add_argument("--max_depth", type=whole_number(1), default=4)
    parser.add_argument("--ood_min_length", type=whole_number(2), default=18, help="out of distribution")
    parser.add_argument("--ood_max_length", type=whole_number(2), default=28)
    parser.add_argument("--ood_min_depth", type=whole_number(1), default=5)
    parser.add_argument("--ood_max_depth", type=whole_number(1), default=8)
    parser.add_argument("--train_rows", type=whole_number(1), default=20000)
    parser.add_argument("--validation_rows", type=whole_number(1), default=500)
    parser.add_argument("--ood_rows", type=whole_number(1), default=500)
    parser.add_argument("--seed", type=whole_number(0), default=0)
    args = parser.parse_args(argv)
    shape = DyckShape(args.kinds, args.min_length, args.max_length, args.min_depth, args.max_depth)
    ood = DyckShape(args.kinds, args.ood_min_length, args.ood_max_length, args.ood_min_depth, args.ood_max_depth)
    check(output_path_problem("--out_dir", args.out_dir), shape.problem(), ood.problem("ood_"),
          None if ood.min_length > shape.max_length or ood.min_depth > shape.max_depth else
          "--ood_min_length / --ood_min_depth: out-of-distribution words must be longer (min length above "
          "--max_length) or deeper (min depth above --max_depth) than every training word")
    description = generate(args.out_dir, shape, ood, args.train_rows, args.validation_rows, args.ood_rows, args.seed)
    print(f"wrote {args.out_dir}: {description['rows']}")
    return description


if __name__ == "__main__":
    run_entry_point(main)
