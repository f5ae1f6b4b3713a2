"""Generation speed with and without the KV cache, for the EBT and the Transformer++.

Greedy decoding of --new_tokens tokens after a --prompt_tokens prompt, fp32, batch --batch. Each path
runs --repeats times (median), cached and uncached interleaved in one process; the cached and uncached
tokens are checked to be equal.

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


def build(model_name, size, vocab, context):
    layers, heads, dim = MODEL_SIZES[size]
    hp = dict(vocab_size=vocab, context_length=context, embedding_dim=dim, num_transformer_blocks=layers,
              multiheaded_attention_heads=heads, pad_token_id=vocab - 1, ebt_type="time_embed", mcmc_num_steps=2,
              mcmc_step_size=500.0, denoising_initial_condition="zeros")  # deterministic: cached == uncached
    torch.manual_seed(0)
    return (EBT_NLP if model_name == "ebt" else Baseline_Transformer_NLP)(hp).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["4xs", "xxs"], choices=list(MODEL_SIZES))
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt_tokens", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    context = args.prompt_tokens + args.new_tokens
    prompt = torch.randint(0, args.vocab - 1, (args.batch, args.prompt_tokens),
                           generator=torch.Generator().manual_seed(0))
    print(f"greedy, batch {args.batch}, prompt {args.prompt_tokens}, {args.new_tokens} new tokens, vocab {args.vocab}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'model':>16} {'cached tok/s':>13} {'uncached tok/s':>15} {'ms/token (c/u)':>16} {'speed-up':>9} "
          f"{'same':>5}")
    for size in args.sizes:
        for model_name in ("baseline_transformer", "ebt"):
            model = build(model_name, size, args.vocab, context)
            times, outputs = {True: [], False: []}, {}
            for _ in range(args.repeats):
                for use_cache in (True, False):
                    start = time.perf_counter()
                    outputs[use_cache], _ = generate(model, prompt, args.new_tokens, use_cache=use_cache)
                    times[use_cache].append(time.perf_counter() - start)
            cached, uncached = statistics.median(times[True]), statistics.median(times[False])
            per_step = lambda t: t / args.new_tokens * 1e3
            tokens = args.batch * args.new_tokens
            label = f"{'T++' if model_name == 'baseline_transformer' else 'EBT'}-{size}"
            print(f"{label:>16} {tokens / cached:>13.0f} {tokens / uncached:>15.0f} "
                  f"{per_step(cached):>7.2f}/{per_step(uncached):<8.2f} {uncached / cached:>8.1f}x "
                  f"{str(torch.equal(outputs[True], outputs[False])):>5}")


if __name__ == "__main__":
    main()
