"""Video modality (spec 6): frozen frame encoders and the next-frame EBT / Transformer++ models."""
