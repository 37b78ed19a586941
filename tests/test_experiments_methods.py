"""Slow: every method trained on mnist-5k with its CPU config beats ERM under PGD-ℓ∞ (ε = 0.1)."""

import pytest

from experiments.mnist5k_methods import METHODS, run_method


@pytest.mark.slow
def test_every_robust_method_beats_erm_under_pgd(tmp_path):
    erm = run_method("erm", tmp_path, epochs=5)  # as in the README table
    assert erm["clean_acc"] > 0.95
    for name in METHODS:
        if name == "erm":
            continue
        row = run_method(name, tmp_path, epochs=5)
        assert row["pgd_linf_0.1_acc"] > erm["pgd_linf_0.1_acc"], row
