"""The programs of example_code/ run and learn."""
import importlib.util
import math
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "example_code", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minimal_training_loop_learns():
    assert load("minimal_nlp_training_loop").main(["--steps", "40"]) < math.log(258)  # better than uniform bytes


def test_a_new_modality_is_one_model_and_one_task_trained_by_the_same_trainer():
    """example_code/toy_regression_ebt.py registers a toy EBT and its task; ModelTrainer trains it like any other."""
    from base_model_trainer import ModelTrainer
    from model.config import CONFIGS
    from model.registry import MODELS
    from tasks import TASKS

    example = load("toy_regression_ebt")
    try:
        assert example.main(["--steps", "150"]) < 0.25  # predicting 0 scores 0.52
        module = ModelTrainer(dict(example.flag_defaults(), modality="TOY", model_name="ebt"))
        assert isinstance(module.model, example.ToyRegressionEBT)
        assert isinstance(module.task, example.ToyRegressionTask)
    finally:  # the registries are the process's: leave them as the other tests expect
        MODELS.pop(("TOY", "ebt")), CONFIGS.pop(("TOY", "ebt")), TASKS.pop("TOY")
