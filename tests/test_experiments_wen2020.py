"""Slow: ``python -m experiments.wen2020 --quick`` end to end: every strength trained, gaps,
margins and layer spectra measured and consistent."""

import pytest

from experiments import wen2020


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    doc = wen2020.main(["--workdir", str(tmp_path), "--quick"])
    assert len(doc["claims"]) == 3
    models = doc["measurements"]["models"]
    assert sorted(r["multiple"] for r in models.values()) == list(wen2020.MULTIPLES)
    for row in models.values():
        assert row["loss_gap"] == pytest.approx(row["test_loss"] - row["train_loss"])
        assert row["test_margin_std"] > 0 and 0 <= row["middle_probability_fraction"] <= 1
        assert len(row["sv_std_by_layer"]) == 7 and all(v > 0 for v in row["sv_std_by_layer"])
    for claim in doc["claims"]:
        for fig in claim["figures"]:
            assert (tmp_path / fig).stat().st_size > 10_000
