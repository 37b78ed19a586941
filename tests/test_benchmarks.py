"""Smoke test of the benchmark runner (``python -m benchmarks``): structure only, never a time.

Runs the runner in-process in ``--quick`` mode (batch 2, one repeat) for the ``peers`` section
with the torch venv pointed at a directory that does not exist, and checks the JSON it writes:
metadata (machine, versions), one row per peer goal, the torch rows saying "peer not installed"
with the install hint, the JAX-only row measured, and that quick mode claims no goal.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import run as bench_run


@pytest.fixture(scope="module")
def quick_peers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "result.json"
    result = bench_run.main(["--quick", "--batch", "2", "--only", "peers",
                             "--torch-venv", str(tmp / "no-such-venv"), "--json", str(out),
                             "--markdown"])
    with open(out) as f:
        written = json.load(f)
    return result, written


def test_json_structure(quick_peers):
    _, res = quick_peers
    assert set(res) == {"meta", "rows", "raw"}
    meta = res["meta"]
    assert meta["quick"] is True and meta["sections"] == ["peers"] and meta["batch"] == 2
    for key in ("cpu_model", "usable_cores", "logical_cores", "platform", "jax_backend"):
        assert key in meta["machine"]
    for lib in ("python", "jax", "jaxlib", "flax", "optax", "numpy"):
        assert meta["versions"][lib]
    assert meta["peer"]["status"] == "not installed"
    for row in res["rows"]:
        assert set(row) >= {"section", "goal", "measured", "target", "met", "seconds", "note"}
        assert row["section"] == "peers"


def test_peer_rows_say_not_installed(quick_peers):
    _, res = quick_peers
    rows = res["rows"]
    torch_rows = [r for r in rows if "torch" in r["goal"].lower()]
    # PGD ℓ∞, PGD ℓ2, forward and input gradient (reference rows; robustjax's side measured),
    # then the two-process race rows: library ERM step, plain jax.jit ERM step, PGD-10 AT step
    assert len(torch_rows) == 7
    for r in torch_rows:
        assert r["measured"] is None
        assert r["met"] == "—"
        assert "peer not installed" in r["note"]
        assert "setup_torch_env.sh" in r["note"]
        assert "torch" not in r["seconds"]
    for r in torch_rows[:4]:
        assert r["seconds"]["robustjax"] > 0
    assert [r["goal"].split(" ÷ ")[1].split(" (")[0] for r in torch_rows[4:]] == [
        "robustjax library ERM step", "plain jax.jit ERM step", "robustjax PGD-10 AT step"]


def test_quick_mode_claims_no_goal(quick_peers):
    _, res = quick_peers
    measured = [r for r in res["rows"] if r["measured"] is not None]
    assert [r["goal"] for r in measured] == ["Python-loop JAX PGD-10 ℓ∞ ÷ robustjax PGD-10"]
    for r in measured:
        assert math.isfinite(r["measured"]) and r["measured"] > 0
        assert r["met"] == "n/a (quick)"


def test_text_and_markdown_tables(quick_peers):
    result, _ = quick_peers
    text = bench_run.format_text(result["rows"])
    md = bench_run.format_markdown(result["rows"])
    assert text.splitlines()[0].split()[:3] == ["section", "goal", "measured"]
    assert len(text.splitlines()) == 2 + len(result["rows"])
    lines = md.splitlines()
    assert lines[0].startswith("| section | goal | measured | target | met |")
    assert len(lines) == 2 + len(result["rows"])
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:])


def test_bad_section_is_rejected():
    with pytest.raises(SystemExit):
        bench_run.parse_sections(["fused,nonsense"])


def test_evaluation_row_is_the_throughput_ratio():
    # The evaluation section's row from raw measurements (the measuring itself spawns two JAX
    # processes; `python -m benchmarks --only evaluation` runs it).
    raw = {"evaluation": {"suite": "mnist-quick", "examples": 128, "batch": 128,
                          "median_s": {1: 4.0, 4: 5.0}, "examples_per_s": {1: 32.0, 4: 25.6},
                          "median_cpu_s": {1: 7.0, 4: 10.0}}}
    (row,) = bench_run.build_rows(["evaluation"], raw, {}, quick=False)
    assert row["section"] == "evaluation" and row["measured"] == pytest.approx(0.8)
    assert row["seconds"] == {"1 device": 4.0, "4 devices": 5.0}
    assert "32.0 vs 25.6 examples/s" in row["note"] and "1 ÷ 4 devices 0.70" in row["note"]
    assert row["met"] == "—"


@pytest.mark.slow
def test_reuse_rows(tmp_path):
    """``--only reuse``: one row per function, a second call with new parameters compiles
    nothing (the only benchmark claim that holds even in a quick run on a loaded machine)."""
    out = tmp_path / "reuse.json"
    result = bench_run.main(["--quick", "--batch", "2", "--only", "reuse", "--json", str(out)])
    rows = result["rows"]
    assert [r["section"] for r in rows] == ["reuse"] * 4
    for r in rows:
        assert r["note"].startswith("0 XLA compilation(s) in the 2nd call"), r
        assert r["seconds"]["1st compile"] > 0 and r["measured"] < 0.5
