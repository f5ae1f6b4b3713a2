"""Transformer++ language model: the baseline EBTs are compared against (docs/method.md §6)."""
import torch.nn as nn

from model.blocks import init_linear
from model.config import TransformerConfig
from model.flops import transformer_flops, weight_count
from model.nlp.common import count_target_tokens, inputs_and_targets, next_token_loss
from model.nlp.vocab_step import chunk_rows, linear_cross_entropy
from model.protocol import Model
from model.transformer import CausalTransformer


class Baseline_Transformer_NLP(Model):
    """Token embedding -> causal transformer -> untied Linear(D, V) head -> next-token logits."""

    def __init__(self, hparams):
        super().__init__()
        cfg = hparams if isinstance(hparams, TransformerConfig) else TransformerConfig.from_hparams(hparams)
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)  # N(0, 1), as published
        self.transformer = CausalTransformer(cfg)
        self.output = nn.Linear(cfg.embedding_dim, cfg.vocab_size, bias=False)
        init_linear(self.output, cfg.weight_initialization_method, cfg.weight_initialization_gain)

    def embed_observed(self, input_ids):
        return self.embeddings(input_ids)

    def head(self, hidden):
        """Trunk outputs (B, n, D) -> next-token logits (B, n, V)."""
        return self.output(hidden)

    def hidden_states(self, input_ids):
        """input_ids (B, n) -> trunk outputs (B, n, D), what the head maps to logits."""
        return self.transformer(self.embed_observed(input_ids))

    def forward(self, input_ids):
        """input_ids (B, n) -> logits (B, n, V)."""
        return self.head(self.hidden_states(input_ids))

    def estimate_flops(self):
        """Training FLOPs per predicted token (model/flops.py): every weight but the embedding lookup."""
        c = self.cfg
        return transformer_flops(weight_count(self, exclude=("embeddings",)), c.num_transformer_blocks,
                                 c.embedding_dim, c.context_length)

    def forward_loss_wrapper(self, batch, phase="train"):
        inputs, targets = inputs_and_targets(batch, self.cfg.pad_token_id)
        if self.cfg.fused_vocab_loss == "off":
            loss = next_token_loss(self(inputs), targets, self.cfg.pad_token_id)
        else:  # the same loss without the (B, n, V) logits (model/nlp/vocab_step.py)
            hidden = self.hidden_states(inputs).flatten(0, 1)
            loss = linear_cross_entropy(hidden, self.output.weight, targets.flatten(), self.cfg.pad_token_id,
                                        chunk_rows(self.cfg.vocab_size, self.cfg.vocab_chunk_mb, hidden.device))
        return {
            "loss": loss,
            "final_step_loss": loss.detach(),
            "perplexity": loss.detach().exp(),
            "step_losses": loss.detach().unsqueeze(0),  # (1,): one "step" for the per-step reports
            "count": count_target_tokens(targets, self.cfg.pad_token_id),
        }
