"""The shortest program that trains our EBT (or Transformer++) on text: a plain PyTorch loop.

No Lightning, no schedule, no checkpoints: just the models of model/, the bundled Shakespeare corpus and
AdamW with the step size alpha in its own parameter group (the one detail that matters; docs/method.md §11.5).
Like the published example, it does not reproduce the paper's results: use train_model.py for that.

    python example_code/minimal_nlp_training_loop.py                   # the EBT, ~1 minute on 2 CPU cores
    python example_code/minimal_nlp_training_loop.py --model baseline_transformer
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from data.nlp import TextDataConfig, build_nlp_datasets, load_tokenizer  # noqa: E402
from model.nlp.baseline_transformer import Baseline_Transformer_NLP  # noqa: E402
from model.nlp.ebt import EBT_NLP  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description="Minimal EBT / Transformer++ training loop on Shakespeare.")
    parser.add_argument("--model", default="ebt", choices=["ebt", "baseline_transformer"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    tokenizer = load_tokenizer("byte")
    data = TextDataConfig(dataset_name="shakespeare", context_length=64, validation_split_pct=0.01, seed=0,
                          num_workers=0, tokenizer="byte")
    train, valid = build_nlp_datasets(data, tokenizer)

    hparams = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, context_length=64,
                   embedding_dim=128, num_transformer_blocks=2, multiheaded_attention_heads=2,
                   # EBT thinking: 2 steps on 2 energy landscapes, softmaxed predictions, learnable step size
                   ebt_type="time_embed", mcmc_num_steps=2, mcmc_step_size=500.0, mcmc_step_size_learnable=True,
                   normalize_initial_condition=True)
    model = (EBT_NLP if args.model == "ebt" else Baseline_Transformer_NLP)(hparams)
    alpha = [model.alpha] if args.model == "ebt" else []
    others = [p for p in model.parameters() if all(p is not a for a in alpha)]
    optimizer = torch.optim.AdamW([{"params": others, "lr": args.lr},  # alpha lr ~ 3 x alpha x lr
                                   {"params": alpha, "lr": args.lr * 1500, "weight_decay": 0.0}])

    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)
    for step in range(1, args.steps + 1):
        batch = next(batches)
        loss = model.forward_loss_wrapper(batch, "train")["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # through the thinking steps: a second-order backward for the EBT
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0:
            print(f"step {step:4d}  train loss {loss.item():.3f}")

    valid_rows = torch.stack([valid[i]["input_ids"] for i in range(min(64, len(valid)))])
    out = model.forward_loss_wrapper({"input_ids": valid_rows}, "valid")
    per_step = " ".join(f"{loss:.3f}" for loss in out["step_losses"].tolist())
    print(f"validation loss after each thinking step: {per_step}")
    return out["step_losses"][-1].item()


if __name__ == "__main__":
    main()
