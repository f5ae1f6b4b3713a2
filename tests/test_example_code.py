"""The minimal training loop of example_code/ runs and learns (below the uniform-guess loss)."""
import importlib.util
import math
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_minimal_training_loop_learns():
    path = os.path.join(ROOT, "example_code", "minimal_nlp_training_loop.py")
    spec = importlib.util.spec_from_file_location("minimal_nlp_training_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--steps", "40"]) < math.log(258)  # better than a uniform guess over bytes
