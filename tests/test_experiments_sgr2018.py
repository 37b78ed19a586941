"""Slow: ``python -m experiments.sgr2018 --quick`` end to end: Table 3, transfer, LRC and
covariance outputs exist and are consistent."""

import math

import pytest

from experiments import sgr2018


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    doc = sgr2018.main(["--workdir", str(tmp_path), "--quick"])
    assert len(doc["claims"]) == 4
    for claim in doc["claims"]:
        for fig in claim["figures"]:
            assert (tmp_path / fig).stat().st_size > 5_000
    for row in doc["measurements"]["models"].values():
        t3 = row["table3"]
        assert 0 <= t3["PGD-10@32/255"] <= t3["clean"] <= 1
        assert t3["PGD-10@64/255"] <= t3["PGD-10@32/255"] + 0.05
        assert t3["DeepFool rho"] > 0
        assert all(0 <= a <= row["lrc_clean"] for a in row["lrc"].values())
    tm = doc["measurements"]["transfer"]
    for target, acc in tm["white_box_acc"].items():
        assert float(acc) <= float(tm["clean_acc"][target])
    cov = doc["measurements"]["covariance"]
    assert 0 < cov["PGD"]["decay_length"] and math.isfinite(cov["PGD"]["decay_length"])
    assert 0.0 < doc["measurements"]["pgd_fgsm_covariance_similarity"] <= 1.0
