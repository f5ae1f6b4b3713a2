"""Language modelling: token rows or question/answer pairs; perplexity per thinking step, or generated answers
scored by exact match and token F1 (--execution_mode inference)."""
import json

import torchmetrics

from data.nlp import build_collator, build_splits, load_tokenizer, reference_answer
from inference.nlp.generate_text import SamplingConfig, generate
from model.nlp.vocab_step import describe_vocab_path
from tasks.base import Task
from utils.metrics import exact_match, token_f1


class TextTask(Task):
    reports_perplexity = True
    curve_label = "cross-entropy (nats / token)"

    def __init__(self, hp):
        super().__init__(hp)
        self._tokenizer = None
        # generated answers: mean exact match and token F1 (all-reduced across ranks)
        self.exact_match, self.token_f1 = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()

    @staticmethod
    def prepare(hp):
        if hp.get("vocab_size") is None:  # the vocabulary is the tokenizer's
            tokenizer = load_tokenizer(hp["tokenizer"])
            hp["vocab_size"], hp["pad_token_id"] = len(tokenizer), tokenizer.pad_token_id
        return {}

    @property
    def tokenizer(self):
        """--tokenizer, loaded when the data is first built."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hp.tokenizer)
        return self._tokenizer

    def splits(self, model, stage):
        return build_splits(self.hp, self.tokenizer, stage)

    def collate(self):
        return build_collator(self.hp, self.tokenizer)

    def describe_inputs(self, model):
        return f"vocabulary {self.hp.vocab_size}, context {self.hp.context_length}"

    def startup_lines(self, model, device):
        return [describe_vocab_path(model.cfg, model.is_ebt, device)]

    @property
    def answers_questions(self):
        return self.hp.execution_mode == "inference"

    def test_step(self, module, batch, batch_idx):
        if not self.answers_questions:
            return super().test_step(module, batch, batch_idx)
        with module.seeded("test", batch_idx):
            self.answer(module, batch)

    def answer(self, module, batch):
        """Answer each prompt (prompts of one length at a time: the caches need equal lengths), write a JSON line
        to module.results_file and score exact match and token F1."""
        hp, eos = self.hp, self.tokenizer.eos_token_id
        sampling = SamplingConfig(hp.infer_temp, hp.infer_topp, hp.infer_topk or 0)  # None (published default): all
        lengths = batch["prompt_lengths"]
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten().tolist()
            tokens, _ = generate(module.model, batch["prompt_ids"][rows, :length], hp.infer_max_gen_len, sampling,
                                 eos_token_id=eos, inference=module.inference, context_length=hp.context_length + 1,
                                 compile=hp.infer_compile_decoding)
            for row, generated in zip(rows, tokens[:, length:].tolist()):
                text = self.tokenizer.decode(generated[:generated.index(eos)] if eos in generated else generated)
                # the same extraction on both sides (GSM8K: the number after "####")
                reference = reference_answer(hp.dataset_name, batch["answers"][row])
                predicted = reference_answer(hp.dataset_name, text)
                em, f1 = exact_match(predicted, reference), token_f1(predicted, reference)
                self.exact_match.update(em)
                self.token_f1.update(f1)
                prompt = batch["prompts"][row]
                record = {"question": prompt, "generation": prompt + text if hp.infer_echo else text,
                          "reference": reference, "exact_match": em, "f1": f1}
                module.results_file.write(json.dumps(record) + "\n")
        module.results_file.flush()

    def test_report(self, module):
        if not self.answers_questions:
            return super().test_report(module)
        report = {"test_em_score": self.exact_match.compute(), "test_f1_score": self.token_f1.compute()}
        self.exact_match.reset()
        self.token_f1.reset()
        return report
