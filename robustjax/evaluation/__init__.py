"""Batch robustness evaluation."""
