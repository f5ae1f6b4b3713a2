"""Exact match and token F1 of generated answers (our own normalisation; nothing is downloaded)."""
import re
import string
from collections import Counter

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_text(text):
    """Lowercase, drop punctuation, collapse whitespace."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(prediction, reference):
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction, reference):
    """Harmonic mean of token precision and recall after normalisation (SQuAD-style)."""
    predicted, expected = normalize_text(prediction).split(), normalize_text(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)
