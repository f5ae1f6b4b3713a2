"""Video modality (docs/method.md §8): frozen frame encoders and the next-frame EBT / Transformer++ models."""
