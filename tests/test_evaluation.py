"""Evaluation runs (--only_test) and System 2 thinking at test time (docs/method.md §11.2, §5)."""
import glob
import json
import math
from argparse import Namespace

import pytest
import torch

import train_model
from base_model_trainer import ModelTrainer
from model.config import InferenceConfig
from model.nlp.ebt import EBT_NLP
from model.nlp.common import inputs_and_targets
from tests.test_training import tiny_run

TINY_EBT = dict(vocab_size=40, context_length=12, embedding_dim=32, num_transformer_blocks=2,
                multiheaded_attention_heads=4, pad_token_id=39, ebt_type="time_embed", mcmc_step_size=5.0,
            normalize_initial_condition=True, mcmc_step_size_learnable=True)  # the paper's settings


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, corpus):
    """A tiny EBT and a tiny Transformer++ trained for a few steps on one play."""
    log_dir = tmp_path_factory.mktemp("trained")
    paths = {}
    for model_name in ("ebt", "baseline_transformer"):
        thinking = ["--mcmc_step_size", "5", "--mcmc_step_size_lr_multiplier", "15"] if model_name == "ebt" else []
        assert train_model.main(tiny_run("--dataset_dir", corpus, "--log_dir", str(log_dir), "--run_name",
                                         model_name, "--model_name", model_name, "--max_steps", "6", *thinking)) == 0
        (paths[model_name],) = glob.glob(str(log_dir / model_name / "*" / "checkpoints" / "last.ckpt"))
    return paths


def evaluate(tmp_path, checkpoint, *extra):
    log_dir = tmp_path / "eval"
    status = train_model.main(["--only_test", "--only_test_model_ckpt", checkpoint, "--log_dir", str(log_dir),
                               "--no_wandb", *extra])
    if status != 0:
        return status, None
    (report,) = glob.glob(str(log_dir / "*" / "*" / "test_report.json"))
    with open(report) as f:
        return status, json.load(f)


def test_evaluation_rebuilds_the_trained_model_and_applies_test_time_flags(tmp_path, checkpoints):
    # the command line's architecture defaults (width 128) are not used: the checkpoint's (width 32) are
    status, report = evaluate(tmp_path, checkpoints["ebt"], "--batch_size_per_device", "4",
                              "--infer_ebt_advanced", "--infer_ebt_num_steps", "3", "--infer_generated_samples", "2")
    assert status == 0
    assert "test_loss_step_6" in report and "test_loss_step_7" not in report  # 2 landscapes x 3 steps
    assert report["test_perplexity"] == pytest.approx(math.exp(report["test_loss_step_6"]), rel=1e-5)


def test_an_override_that_would_change_the_trained_model_is_refused(tmp_path, checkpoints, capsys):
    status, _ = evaluate(tmp_path, checkpoints["ebt"], "--ebt_type", "default")
    assert status == 2
    assert "--ebt_type cannot change at test time (the checkpoint has 'time_embed')" in capsys.readouterr().err
    status, _ = evaluate(tmp_path, checkpoints["baseline_transformer"], "--infer_ebt_advanced")
    assert status == 2 and ("--infer_ebt_advanced is not read by --modality NLP --model_name baseline_transformer"
                            in capsys.readouterr().err)


def test_a_file_that_is_not_a_checkpoint_is_reported(tmp_path, capsys):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    status, _ = evaluate(tmp_path, str(bogus))
    assert status == 2 and "is not a checkpoint of this project" in capsys.readouterr().err


def test_test_perplexity_is_the_token_weighted_hand_computation(tmp_path, checkpoints):
    # batch size 7 leaves a short last batch: a mean of per-batch losses would differ
    status, report = evaluate(tmp_path, checkpoints["baseline_transformer"], "--batch_size_per_device", "7")
    checkpoint = torch.load(checkpoints["baseline_transformer"], weights_only=False)
    hp = dict(checkpoint["hyper_parameters"], batch_size_per_device=7)
    module = ModelTrainer(hp)
    module.load_state_dict(checkpoint["state_dict"])
    module.setup("test")
    rows = torch.stack([item["input_ids"] for item in module.valid_dataset])
    assert len(rows) % 7 != 0
    inputs, targets = inputs_and_targets({"input_ids": rows}, hp["pad_token_id"])
    with torch.no_grad():
        logits = module.model(inputs)
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
    assert report["test_perplexity"] == pytest.approx(math.exp(nll / targets.numel()), rel=1e-5)


def test_best_of_n_keeps_the_per_position_minimum_final_energy():
    torch.manual_seed(0)
    model = EBT_NLP(TINY_EBT)
    ids = torch.randint(0, 39, (2, 6))
    icfg = dict(infer_ebt_num_steps=2, infer_langevin_dynamics_noise=1.0)
    torch.manual_seed(1)
    singles = model.advanced_inference(ids.repeat_interleave(3, 0), InferenceConfig(**icfg))
    torch.manual_seed(1)
    best = model.advanced_inference(ids, InferenceConfig(**icfg, infer_generated_samples=3))
    per_sample = singles.final_energy.view(2, 3, 6)
    torch.testing.assert_close(best.final_energy, per_sample.min(1).values)
    choice = per_sample.argmin(1)  # (2, 6)
    expected = singles.states[-1].view(2, 3, 6, 40)[torch.arange(2)[:, None], choice, torch.arange(6)]
    torch.testing.assert_close(best.states[-1], expected)
    assert (choice != choice[0, 0]).any()  # positions really choose different samples


def test_inference_plan_of_spec_4_2():
    model = EBT_NLP(dict(TINY_EBT, mcmc_num_steps=2))
    landscapes, alphas, noise = model.inference_plan(InferenceConfig(infer_ebt_num_steps=2))
    assert landscapes == [0, 0, 1, 1] and all(a == 5.0 for a in alphas) and noise == [None] * 4
    landscapes, alphas, noise = model.inference_plan(InferenceConfig(
        infer_ebt_num_steps=3, infer_steps_final_landscape=True, infer_ebt_override_alpha=0.5,
        infer_alpha_final_landscape=True, infer_langevin_dynamics_noise=2.0, infer_langevin_first_step=True))
    assert landscapes == [0, 1, 1, 1]
    assert [float(a) for a in alphas] == [5.0, 2.5, 2.5, 2.5]  # trained alpha off the last landscape
    assert float(noise[0]) == 2.0 and noise[1:] == [None] * 3
    assert float(model.inference_plan(InferenceConfig(infer_ebt_override_alpha=7.0))[1][0]) == 7.0
    default = EBT_NLP(dict(TINY_EBT, ebt_type="default", mcmc_num_steps=2))
    assert len(default.inference_plan(InferenceConfig(infer_ebt_num_steps=5))[0]) == 5


def test_system2_steps_use_the_clamped_step_size_of_system1():
    """A learned alpha that went negative is clamped to MIN_STEP_SIZE in training and System 1; System 2 once used
    it raw and climbed the energy (found by the energy-landscape pictures)."""
    from model.thinking import MIN_STEP_SIZE

    model = EBT_NLP(dict(TINY_EBT, mcmc_num_steps=2))
    with torch.no_grad():
        model.alpha.fill_(-16.0)
    assert float(model.step_size((1,), randomize=False)) == pytest.approx(MIN_STEP_SIZE)
    _, alphas, _ = model.inference_plan(InferenceConfig(infer_ebt_num_steps=2))
    assert all(float(a) == pytest.approx(MIN_STEP_SIZE) for a in alphas)


def test_accepting_only_lower_energies_never_raises_the_energy():
    torch.manual_seed(0)
    model = EBT_NLP(dict(TINY_EBT, ebt_type="default", mcmc_step_size=200.0))  # one landscape; big steps overshoot
    ids = torch.randint(0, 39, (2, 6))
    result = model.advanced_inference(ids, InferenceConfig(infer_ebt_num_steps=3, infer_accept_lower_energies=True))
    assert (result.final_energy <= result.energies[0] + 1e-6).all()
    plain = model.advanced_inference(ids, InferenceConfig(infer_ebt_num_steps=3))
    assert (plain.final_energy > plain.energies[0]).any()  # without the check some positions get worse


def test_trainer_uses_namespace_or_checkpoint_dict():
    hp = Namespace(**dict(TINY_EBT, modality="NLP", model_name="ebt"))
    assert isinstance(ModelTrainer(hp).model, EBT_NLP)
    assert isinstance(ModelTrainer(vars(hp)).model, EBT_NLP)



@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory):
    """A tiny GSM8K in its published schema (jsonl per split)."""
    folder = tmp_path_factory.mktemp("gsm8k")
    rows = [{"question": f"What is {a} plus {b}?", "answer": f"{a} plus {b} is {a + b}.\n#### {a + b}"}
            for a in range(12) for b in range(10)]
    for split, part in (("train", rows[:100]), ("test", rows[100:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return str(folder)


def test_finetuning_masks_the_loss_to_answer_tokens():
    model = EBT_NLP(TINY_EBT)
    ids = torch.randint(0, 39, (2, 13))
    mask = torch.zeros(2, 13, dtype=torch.bool)
    mask[:, 9:] = True  # the answer: last 4 tokens
    out = model.forward_loss_wrapper({"input_ids": ids, "loss_mask": mask}, "valid")
    assert out["count"] == 2 * 4  # targets = ids[:, 1:], counted where mask[:, 1:]


def test_finetune_then_evaluate_on_a_question_answer_set(tmp_path, checkpoints, gsm8k_dir):
    log_dir = tmp_path / "ft"
    assert train_model.main(["--execution_mode", "finetune", "--finetuning_model_ckpt", checkpoints["ebt"],
                             "--dataset_name", "gsm8k", "--dataset_dir", gsm8k_dir, "--max_steps", "4",
                             "--warm_up_steps", "1", "--batch_size_per_device", "8", "--log_dir", str(log_dir),
                             "--no_wandb", "--val_check_interval", "4"]) == 0
    (finetuned,) = glob.glob(str(log_dir / "*" / "*" / "checkpoints" / "last.ckpt"))
    hp = torch.load(finetuned, weights_only=False)["hyper_parameters"]
    assert hp["embedding_dim"] == 32 and hp["execution_mode"] == "finetune"  # architecture from the checkpoint
    status, report = evaluate(tmp_path, finetuned, "--execution_mode", "pretrain")  # PPL of question + answer
    assert status == 0 and math.isfinite(report["test_perplexity"])


def test_inference_mode_writes_one_json_line_per_question_and_scores_them(tmp_path, checkpoints, gsm8k_dir, capsys):
    log_dir = tmp_path / "inference"
    assert train_model.main(["--only_test", "--only_test_model_ckpt", checkpoints["ebt"], "--execution_mode",
                             "inference", "--dataset_name", "gsm8k", "--dataset_dir", gsm8k_dir,
                             "--infer_max_gen_len", "3", "--infer_temp", "0", "--batch_size_per_device", "8",
                             "--infer_echo", "--log_dir", str(log_dir), "--no_wandb"]) == 0
    (results,) = glob.glob(str(log_dir / "*" / "*" / "results.jsonl"))
    with open(results) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 20  # the fixture's test split
    assert records[0]["question"].startswith("[[Question]]: What is") and records[0]["reference"].isdigit()
    assert all(set(r) == {"question", "generation", "reference", "exact_match", "f1"} for r in records)
    assert all(r["generation"].startswith(r["question"]) for r in records)  # --infer_echo
    assert "exact match" in capsys.readouterr().out


def test_exact_match_and_token_f1():
    from utils.metrics import exact_match, token_f1

    assert exact_match("The Answer, is 42!", "the answer is 42") == 1.0
    assert exact_match("42", "43") == 0.0
    assert token_f1("red big apple", "big red car") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
