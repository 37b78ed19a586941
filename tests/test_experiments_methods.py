"""Slow: the methods trained on mnist-5k with their CPU configs beat ERM under PGD-ℓ∞ (ε = 0.1).

Measured (README "Results"): at 5 epochs on 4,000 digits, ERM's PGD accuracy itself moves by
±0.02 between seeds, and by as much from float32 rounding alone (XLA's own convolutions vs
YNNPACK's). The adversarial methods, SNR and SOAR beat ERM by ≥ 0.037 on seed 0; SGR, SN and GN
(at the paper's λ converted to pixels, issue 14) only on the mean over three seeds; global SNR (λ = 3e-4, 3e-3 and 1e-2 tried) stays at ERM's
level, as Roth et al. 2019 find the global regularizer much weaker than the data-dependent one,
so it is checked to train, not to be more robust.
"""

import numpy as np
import pytest

from experiments.mnist5k_methods import METHODS, run_method

STRONG = ("adversarial_pgd_linf", "adversarial_fgsm", "adversarial_pgd_l2", "adversarial_wrm",
          "snr", "soar")
WEAK = ("sgr", "sn", "gn")
SEEDS = (0, 1, 2)


def _robust(name, tmp_path, seed):
    row = run_method(name, tmp_path / f"seed{seed}", epochs=5, overrides=(f"seed={seed}",))
    return row


@pytest.mark.slow
def test_robust_methods_beat_erm_under_pgd(tmp_path):
    assert set(STRONG) | set(WEAK) | {"erm", "global_snr"} == set(METHODS)
    erm = {s: _robust("erm", tmp_path, s) for s in SEEDS}
    assert all(r["clean_acc"] > 0.95 for r in erm.values())
    erm0 = erm[0]["pgd_linf_0.1_acc"]
    for name in STRONG:
        row = _robust(name, tmp_path, 0)
        assert row["pgd_linf_0.1_acc"] > erm0 + 0.02, (row, erm0)
    erm_mean = np.mean([r["pgd_linf_0.1_acc"] for r in erm.values()])
    for name in WEAK:
        rows = [_robust(name, tmp_path, s) for s in SEEDS]
        assert np.mean([r["pgd_linf_0.1_acc"] for r in rows]) > erm_mean, (rows, erm_mean)
    g = _robust("global_snr", tmp_path, 0)
    assert g["clean_acc"] > 0.94, g
