"""Regularizers as pure functions of ``logits_fn``."""
