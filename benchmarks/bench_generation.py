"""Generation speed with and without the KV cache, for the EBT and the Transformer++.

Greedy decoding of --new_tokens tokens after a --prompt_tokens prompt, fp32, batch --batch. Each path
runs --repeats times (median), interleaved in one process: uncached (the whole prefix recomputed for every
token, as the published code does), cached, and for the EBT cached + torch.compile (its one-off compilation
is timed separately, not in the median). The tokens of every path are checked to be equal.

    python benchmarks/bench_generation.py                       # 4xs and xxs, 256 new tokens
    python benchmarks/bench_generation.py --sizes 4xs --new_tokens 64
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference.nlp.generate_text import generate  # noqa: E402
from model.config import MODEL_SIZES  # noqa: E402
from model.nlp.baseline_transformer import Baseline_Transformer_NLP  # noqa: E402
from model.nlp.ebt import EBT_NLP  # noqa: E402
from utils.usage import Parser, run_entry_point, whole_number  # noqa: E402


def build(model_name, size, vocab, context):
    layers, heads, dim = MODEL_SIZES[size]
    hp = dict(vocab_size=vocab, context_length=context, embedding_dim=dim, num_transformer_blocks=layers,
              multiheaded_attention_heads=heads, pad_token_id=vocab - 1, ebt_type="time_embed", mcmc_num_steps=2,
              mcmc_step_size=500.0, denoising_initial_condition="zeros")  # deterministic: cached == uncached
    torch.manual_seed(0)
    return (EBT_NLP if model_name == "ebt" else Baseline_Transformer_NLP)(hp).eval()


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["4xs", "xxs"], choices=list(MODEL_SIZES))
    parser.add_argument("--vocab", type=whole_number(2), default=512, help="the last id is the padding token")
    parser.add_argument("--batch", type=whole_number(1), default=4)
    parser.add_argument("--prompt_tokens", type=whole_number(1), default=32)
    parser.add_argument("--new_tokens", type=whole_number(1), default=256)
    parser.add_argument("--repeats", type=whole_number(1), default=3)
    args = parser.parse_args(argv)
    context = args.prompt_tokens + args.new_tokens
    prompt = torch.randint(0, args.vocab - 1, (args.batch, args.prompt_tokens),
                           generator=torch.Generator().manual_seed(0))
    print(f"greedy, batch {args.batch}, prompt {args.prompt_tokens}, {args.new_tokens} new tokens, vocab {args.vocab}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'model':>9} {'path':>16} {'tok/s':>7} {'ms/token':>9} {'vs uncached':>12} {'same tokens':>12}")
    for size in args.sizes:
        for model_name in ("baseline_transformer", "ebt"):
            model = build(model_name, size, args.vocab, context)
            paths = {"uncached": dict(use_cache=False), "cached": dict(use_cache=True)}
            if model_name == "ebt":
                paths["cached + compile"] = dict(use_cache=True, compile=True)
                start = time.perf_counter()
                generate(model, prompt, 2, compile=True)
                compile_seconds = time.perf_counter() - start
            times, outputs = {path: [] for path in paths}, {}
            for _ in range(args.repeats):
                for path, options in paths.items():
                    start = time.perf_counter()
                    outputs[path], _ = generate(model, prompt, args.new_tokens, **options)
                    times[path].append(time.perf_counter() - start)
            label = f"{'T++' if model_name == 'baseline_transformer' else 'EBT'}-{size}"
            uncached = statistics.median(times["uncached"])
            for path in paths:
                seconds = statistics.median(times[path])
                print(f"{label:>9} {path:>16} {args.batch * args.new_tokens / seconds:>7.0f} "
                      f"{seconds / args.new_tokens * 1e3:>9.2f} {uncached / seconds:>11.1f}x "
                      f"{str(torch.equal(outputs[path], outputs['uncached'])):>12}")
            if model_name == "ebt":
                print(f"{label:>9} {'(compilation)':>16} {compile_seconds:>7.1f} s, once per process and shape")


if __name__ == "__main__":
    run_entry_point(main)
