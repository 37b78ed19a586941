"""Slow: ``python -m experiments.soar2020 --quick`` end to end: results, figures, the §2 closed
form to float tolerance, and the trained part's numbers consistent with each other."""

import json

import pytest

from experiments import soar2020


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    doc = soar2020.main(["--workdir", str(tmp_path), "--quick"])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["commit"] == doc["commit"] and len(doc["commit"]) >= 40
    assert (tmp_path / "results.md").read_text().count("| ") > 10
    for claim in doc["claims"]:
        for fig in claim["figures"]:
            assert (tmp_path / fig).stat().st_size > 10_000
    s2 = doc["measurements"]["section2"]
    assert s2["gd_limit_max_abs_error"] < 1e-10
    assert s2["second_order_relative_error"] < 1e-12
    assert s2["first_order_estimate_mean"] == 0.0
    assert s2["second_order_vs_adversarial_max_gradient_difference"] < 1e-10
    assert s2["attack_loss_measured_mean"] == pytest.approx(s2["attack_loss_closed_form"], rel=1e-12)
    assert s2["monte_carlo"]["max_z"] < 4
    assert doc["claims"][0]["verdict"] == "holds"
    nets = doc["measurements"]["networks"]
    assert set(nets) == {f"{n}-s0" for n in ("erm", "pgd_at", "soar_pgd1", "soar_zero", "soar_random")}
    for row in nets.values():
        assert 0.0 <= row["PGD-20@0.1"] <= row["clean"] <= 1.0
        assert row["PGD-20@0.1"] <= row["FGSM@0.1"] + 0.1  # PGD-20 is at least as strong, up to noise
        assert set(row["confidence"]) == {"clean", "random", "pgd1"}
    assert [r["name"] for r in doc["runs"]] == ["erm", "pgd_at", "soar_pgd1", "soar_zero", "soar_random"]
    # --resume reuses every run: nothing is trained again
    again = soar2020.main(["--workdir", str(tmp_path), "--quick", "--resume", "--skip-training"])
    assert again["claims"][0]["verdict"] == "holds"
