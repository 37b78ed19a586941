"""Attacks as pure functions of ``logits_fn`` (one file per attack)."""
