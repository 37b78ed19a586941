"""Slow: ``python -m experiments.farnia2019 --quick`` end to end: adversarial train/test
accuracies with and without SN, random-label curves, results and the figure."""

import pytest

from experiments import farnia2019


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    doc = farnia2019.main(["--workdir", str(tmp_path), "--quick"])
    assert len(doc["claims"]) == 2
    models = doc["measurements"]["models"]
    assert {(r["method"], r["sn"]) for r in models.values()} == {
        (m, sn) for m in farnia2019.METHODS for sn in (False, True)}
    for row in models.values():
        for split in ("train", "test"):
            assert 0 <= row[f"{split}_adv"] <= row[f"{split}_clean"] <= 1
    curves = doc["measurements"]["random_label_train_accuracy"]
    assert set(curves) == {"random_erm", "random_erm_sn", "random_fgm", "random_fgm_sn"}
    assert all(len(c) == 1 and len(c[0]) == 1 for c in curves.values())  # one seed, one epoch
    assert (tmp_path / doc["claims"][0]["figures"][0]).stat().st_size > 10_000
