"""Slow: ``python -m experiments.roth2019 --quick`` end to end: results and figures exist, ℓ2-PGA
perturbations align with the top singular vector far above the random baseline, accuracies are
ordered (clean ≥ attacked, weaker ε ≥ stronger ε)."""

import json

import pytest

from experiments import roth2019


@pytest.mark.slow
def test_quick_run_writes_consistent_results(tmp_path):
    doc = roth2019.main(["--workdir", str(tmp_path), "--quick"])
    assert json.loads((tmp_path / "results.json").read_text())["commit"] == doc["commit"]
    assert len(doc["claims"]) == 3 and (tmp_path / "results.md").exists()
    for claim in doc["claims"]:
        assert claim["verdict"] in ("holds", "holds weakly", "does not hold at this scale")
        for fig in claim["figures"]:
            assert (tmp_path / fig).stat().st_size > 10_000
    models = doc["measurements"]["models"]
    assert set(models) == {f"{n}-s0" for n in roth2019.METHODS}
    for row in models.values():
        assert row["cos_v1"] > 3 * row["random_cos_v1"]  # alignment far above a random direction
        accs = list(row["pga_accuracy"].values())
        assert 0 <= accs[-1] <= accs[0] <= row["clean"] <= 1
        assert row["sigma1"] > 0
        assert set(row["linearity_deviation_at_eps"]) == {"adversarial", "random"}
