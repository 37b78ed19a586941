"""Suites as data (the papers' numbers), ε formatting, reports (JSON/Markdown/PNG) written
atomically, the printed table."""

from __future__ import annotations

import json
import math
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import evaluation as E
from robustjax.evaluation import AttackSpec, reports


def _model_and_data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(size=(16, 3)) * 3, jnp.float32)
    x = rng.random((n, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    return (lambda xx: jnp.tanh(xx.reshape(xx.shape[0], -1) - 0.5) @ w), (x, y)


SUITE = [
    AttackSpec("FGSM", "fgsm", eps=("4/255", "8/255", "16/255")),
    AttackSpec("PGD-3", "pgd", eps=("4/255", "8/255", "16/255"), norm=math.inf,
               params={"steps": 3, "step_size": 2 / 255}),
    AttackSpec("L2-FGM", "fgm", eps=(0.25,), norm=2),
    AttackSpec("Gaussian", "gaussian", eps=(0.05, 0.1)),
    AttackSpec("Spatial", "spatial", eps=("weak",), params={"mode": "grid", "num_angles": 3,
                                                            "num_shifts": 1}),
    AttackSpec("DeepFool", "deepfool", eps=(), params={"max_iter": 10}),
    AttackSpec("WRM", "wrm", eps=(1.0,), params={"steps": 2}),
]


@pytest.fixture(scope="module")
def report():
    f, data = _model_and_data()
    return E.evaluate(f, data, suite=SUITE, batch_size=8, key=0, progress=False, name="tiny")


def test_eps_parsing_and_formatting():
    assert E.parse_eps("8/255") == pytest.approx(8 / 255)
    assert E.parse_eps(" 0.3 ") == 0.3 and E.parse_eps(2) == 2.0
    assert E.format_eps(8 / 255) == "8/255" and E.format_eps(32 / 255) == "32/255"
    assert E.format_eps(0.3) == "0.3" and E.format_eps(0.2) == "0.2"
    assert E.format_eps(1.75) == "1.75" and E.format_eps(0) == "0"
    with pytest.raises(ValueError, match="eps"):
        E.parse_eps("eight")


def test_registered_suites_carry_the_papers_numbers():
    for name in E.list_suites():
        assert E.get_suite(name)  # every suite resolves and its specs validate
    t1 = {s.name: s for s in E.get_suite("soar-table1")}
    assert set(t1) == {"FGSM", "PGD-7", "PGD-20"}
    for s in t1.values():
        assert s.eps == ("8/255",) and s.norm == math.inf
    assert t1["PGD-7"].params["steps"] == 7 and t1["PGD-20"].params["steps"] == 20
    assert t1["PGD-20"].params["step_size"] == pytest.approx(2 / 255)
    (t2,) = E.get_suite("soar-table2")
    assert t2.norm == 2 and t2.params["steps"] == 100
    assert t2.params["step_size_factor"] == pytest.approx(0.025)  # 2.5ε/100
    assert t2.eps == ("20/255", "40/255", "60/255")
    sgr = {s.name: s for s in E.get_suite("sgr-table3-mnist")}
    assert list(sgr) == ["RAND", "FGM", "FGSM", "PGD-10", "DeepFool"]
    assert "32/255" in sgr["PGD-10"].eps and sgr["PGD-10"].params["step_size_factor"] == 0.2
    assert dict(sgr["DeepFool"].params) == {"overshoot": 0.02, "max_iter": 100}
    assert "4/255" in E.get_suite("sgr-table3-cifar10")[0].eps
    farnia_mnist = {s.name: s for s in E.get_suite("farnia-mnist")}
    assert 0.05 in farnia_mnist["FGM"].eps and farnia_mnist["FGM"].eps_scale == "mean_l2_norm"
    assert farnia_mnist["WRM"].eps == (0.04,) and farnia_mnist["WRM"].eps_scale == "mean_l2_norm"
    # CIFAR10/SVHN: whitened inputs, radii converted to pixels (tests/test_units.py checks the
    # numbers against robustjax.units)
    farnia = {s.name: s for s in E.get_suite("farnia-cifar10")}
    assert farnia["FGM"].eps_scale is None and farnia["FGM"].eps[1] == pytest.approx(0.6951, abs=3e-4)
    assert farnia["PGM-15"].params["step_size_factor"] == pytest.approx(2 / 15)
    assert farnia["WRM"].eps[0] == pytest.approx(1.762, abs=1e-3)
    (wen,) = E.get_suite("wen-linf")
    assert wen.eps == ("4/255", "8/255", "16/255") and wen.params["steps"] == 10
    lrc = E.get_suite("sgr-lrc-cifar10")
    assert sorted(s.params["decay_length"] for s in lrc) == [1, 2, 4, 8, 16]
    assert all(s.params["worst_of_n"] == 100 for s in lrc)
    assert E.get_suite("soar-table7")[0].eps == (0.05, 0.1, 0.15)
    assert E.get_suite("soar-table6")[0].eps == ("weak", "medium", "strong")
    assert E.TRANSFER_ATTACKS["sgr-table4-mnist-32"].params["steps"] == 40
    assert E.TRANSFER_ATTACKS["soar-table3"].params["steps"] == 20


def test_suite_from_plain_data_and_registration():
    specs = E.register_suite("test-json-suite", [
        {"name": "P", "attack": "pgd", "eps": ["8/255"], "norm": "inf", "steps": 2,
         "step_size": 0.01, "clip": [0, 1]},
    ])
    assert specs[0].params == {"steps": 2, "step_size": 0.01} and specs[0].norm == math.inf
    f, data = _model_and_data(6)
    rep = E.evaluate(f, data, suite="test-json-suite", batch_size=4, key=0, progress=False)
    assert rep.suite == "test-json-suite" and rep.result("P").eps_label == "8/255"
    del E.SUITES["test-json-suite"]


def test_json_is_robustbench_style(report, tmp_path):
    paths = E.write_reports(report, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(E.REPORT_FILES)
    d = json.loads((tmp_path / "robustness.json").read_text())
    assert d["clean_acc"] == f"{100 * report.clean_accuracy:.2f}"
    two = re.compile(r"^\d{1,3}\.\d\d$")
    assert two.match(d["clean_acc"])
    assert d["threat_model"] == "Linf" and d["eps"] == "4/255"
    linf8 = next(t for t in d["threat_models"] if t["threat"] == "Linf eps=8/255")
    assert linf8["eps"] == "8/255" and two.match(linf8["robust_acc"])
    assert linf8["robust_acc"] == f"{100 * report.robust_accuracy('Linf eps=8/255'):.2f}"
    assert set(linf8["attacks"]) == {"FGSM", "PGD-3"}
    df = next(a for a in d["attacks"] if a["name"] == "DeepFool")
    assert df["results"][0]["rho"] == pytest.approx(report.result("DeepFool").extras["rho"])
    assert isinstance(d["warnings"], list)
    md = (tmp_path / "robustness.md").read_text()
    assert "| Linf eps=8/255 |" in md and "DeepFool" in md and "Gradient-masking" in md
    # Every Markdown table row has the same number of cells as its header.
    rows = [line for line in md.splitlines() if line.startswith("| attack")]
    assert rows and all(line.count("|") == rows[0].count("|") for line in
                        md.split("## Per attack")[1].splitlines() if line.startswith("|"))
    png = (tmp_path / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert paths == [str(tmp_path / n) for n in E.REPORT_FILES]


def test_write_reports_is_atomic(report, tmp_path, monkeypatch):
    for name in E.REPORT_FILES:
        (tmp_path / name).write_text("OLD")

    def broken_plot(*a, **k):
        raise RuntimeError("disk full while plotting")

    monkeypatch.setattr(reports, "plot_report", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        E.write_reports(report, str(tmp_path))
    # The previous complete report is untouched, and no temporary file is left behind.
    assert sorted(os.listdir(tmp_path)) == sorted(E.REPORT_FILES)
    assert all((tmp_path / n).read_text() == "OLD" for n in E.REPORT_FILES)
    monkeypatch.undo()
    E.write_reports(report, str(tmp_path / "new" / "dir"))
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == sorted(E.REPORT_FILES)


def test_table_lists_every_result_and_the_worst_case(report):
    text = report.table()
    assert f"clean accuracy {100 * report.clean_accuracy:.2f}%" in text
    for r in report.results:
        assert r.attack in text
    for threat, acc in report.robust_accuracy().items():
        assert f"{threat}" in text and f"{100 * acc:.2f}%" in text
    assert "gradient-masking" in text
    assert "rho=" in text  # DeepFool's ρ (SGR Table 3, FOOL)
    rows = report.rows()
    assert len(rows) == len(report.results)
    assert all(0.0 <= r["accuracy"] <= report.clean_accuracy for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(E.SUITES))
def test_every_registered_suite_runs(suite):
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(8 * 8 * 3, 4)), jnp.float32)
    f = lambda xx: xx.reshape(xx.shape[0], -1) @ w  # noqa: E731
    x = rng.random((5, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 5).astype(np.int32)
    rep = E.evaluate(f, (x, y), suite=suite, batch_size=4, key=0, progress=False)
    E.check_invariants(rep)
    assert not [w for w in rep.warnings if w.name == "attack_exceeds_budget"]
    assert len(rep.results) >= sum(max(len(s.eps), 1) for s in E.get_suite(suite))
