"""One task per modality (text, image with text-to-image as its variant, video): its data, evaluation and report.

Adding a modality is one model file (registered in model/registry.py) and one task file registered here.
"""
from model.config import model_key
from tasks.base import Task
from tasks.image import DenoisingTask, TextToImageTask
from tasks.text import TextTask
from tasks.video import VideoTask

TASKS = {"NLP": TextTask, "IMG": DenoisingTask, "IMG-t2i": TextToImageTask, "VID": VideoTask}


def register_task(key, task):
    """Add a task for --modality `key` (its models register in model.registry)."""
    TASKS[key] = task


def task_class(hp):
    """The task class of the hyperparameters' modality (and image task), a dict or a Namespace."""
    return TASKS[model_key(hp)[0]]


__all__ = ["TASKS", "Task", "register_task", "task_class"]
