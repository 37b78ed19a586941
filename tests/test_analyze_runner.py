"""``robustjax analyze`` as a user runs it on a tiny trained run: the files it writes, their
agreement with direct calls of the diagnostics (every analysis of robustjax.analyze.analyses_roth,
robustjax.analyze.analyses_sgr_soar and robustjax.analyze.analyses_wen_farnia runs here, on the
shared robustjax.analyze.context), ``--compare``/``--baseline``,
bad options."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import margin_distribution, norm_gain
from robustjax.analyze import analysis_names
from robustjax.cli import main
from robustjax.configs import apply_override, load_config
from robustjax.training.loop import fit, load_run
from robustjax.training.objectives import inference_logits_fn

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=mlp", "model_kwargs={'width': 16}", "epochs=1", "batch_size=256"]
LIMIT, EXAMPLES = 24, 6


def _train(workdir, *overrides):
    config = load_config(ROOT / "configs" / "mnist5k" / "erm.py")
    for a in (*TINY, *overrides):
        apply_override(config, a)
    fit(config, workdir, progress=False)
    return str(workdir)


@pytest.fixture(scope="module")
def erm(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("analyze") / "erm")


@pytest.fixture(scope="module")
def runs(erm, tmp_path_factory):
    return erm, _train(tmp_path_factory.mktemp("analyze") / "erm_lr", "optimizer.learning_rate=0.01")


def test_every_analysis_writes_figures_tables_and_results_that_match_direct_calls(erm):
    """Every analysis on the first run, through the CLI as a user runs it (one test: under
    pytest-xdist a fixture shared by several tests may be rebuilt on each worker)."""
    code = main(["analyze", "--workdir", erm, "--limit", str(LIMIT), "--examples", str(EXAMPLES),
                 "--batch-size", "12"])  # two equal chunks: concatenated, compiled once
    assert code == 0
    workdir = Path(erm)
    report = json.loads((workdir / "analysis.json").read_text())
    assert list(report["analyses"]) == analysis_names()
    labels = [r["label"] for r in report["runs"]]
    assert labels == ["erm"]
    md = (workdir / "analysis.md").read_text()
    for name, entry in report["analyses"].items():
        assert set(entry["results"]) == set(labels) and set(entry["headline"]) == set(labels), name
        assert entry["figures"], name
        for fig in entry["figures"]:
            png = workdir / fig
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, fig
            assert f"]({fig})" in md
        assert f"## {name}:" in md and entry["paper"] in md

    # the results agree with direct calls of the diagnostics on an independently built model
    run, state = load_run(workdir)
    logits_fn = inference_logits_fn(run.model, state.params, state.model_state)  # a plain closure
    x, y = run.test_data.images[:LIMIT], run.test_data.labels[:LIMIT]
    direct = margin_distribution(np.asarray(logits_fn(jnp.asarray(x)), np.float64), y)
    got = report["analyses"]["margins"]["results"]["erm"]
    np.testing.assert_allclose(got["margins"], direct.margins, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(report["analyses"]["norm_gain"]["results"]["erm"]["gain"],
                               norm_gain(logits_fn, x).gain, rtol=1e-5)
    # the alignment's spectrum is the SVD of the explicitly materialized Jacobian
    xe = jnp.asarray(x[:EXAMPLES])
    jac = jax.vmap(jax.jacobian(lambda xi: logits_fn(xi[None])[0]))(xe).reshape(EXAMPLES, 10, -1)
    sv = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
    np.testing.assert_allclose(report["analyses"]["alignment"]["results"]["erm"]["singular_values"], sv,
                               rtol=1e-3, atol=1e-5)
    assert report["settings"]["limit"] == LIMIT and report["settings"]["examples"] == EXAMPLES


def test_compare_and_baseline_overlay_every_model_in_each_figure(runs, tmp_path):
    out = tmp_path / "out"
    from robustjax.analyze import analyze

    outcome, paths = analyze(runs[0], compare=[runs[1]], baseline="random-init", analyses="margins,confidence",
                             limit=LIMIT, examples=EXAMPLES, batch_size=16, out_dir=out, progress=False)
    labels = ["erm", "erm_lr (erm)", "random init (erm)"]
    assert [m.label for m in outcome.models] == labels
    fig = outcome.figures["margins"]["margins"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert all(any(t.startswith(f"{label} (") for t in legend) for label in labels)
    assert sorted(p.name for p in paths) == ["analysis.json", "analysis.md", "analysis_confidence.png",
                                             "analysis_margins.png"]
    report = json.loads((out / "analysis.json").read_text())
    margins = {k: np.asarray(v["margins"]) for k, v in report["analyses"]["margins"]["results"].items()}
    assert all(m.shape == (LIMIT,) for m in margins.values()) and not np.allclose(margins["erm"], margins["erm_lr (erm)"])
    # the baseline is the run's initialization (config.seed): untrained, near-zero margins
    run, _ = load_run(runs[0])
    from robustjax.training.loop import initial_state
    from robustjax.training.optimizers import make_optimizer

    init = initial_state(run, make_optimizer(run.config.optimizer, steps_per_epoch=1, epochs=1))
    logits = inference_logits_fn(run.model, init.params, init.model_state)(jnp.asarray(run.test_data.images[:LIMIT]))
    np.testing.assert_allclose(margins["random init (erm)"],
                               margin_distribution(np.asarray(logits, np.float64), run.test_data.labels[:LIMIT]).margins,
                               rtol=1e-5, atol=1e-5)
    assert np.mean(margins["erm"] > 0) > 0.6


def test_unknown_analysis_lists_the_valid_names(tmp_path, capsys):
    assert main(["analyze", "--workdir", str(tmp_path), "--analyses", "margins,alignmnt"]) == 2
    err = capsys.readouterr().err
    assert "unknown analysis 'alignmnt'" in err and "sigma_path" in err and "capacity" in err


@pytest.mark.parametrize("args,message", [
    (["--limit", "0"], "--limit must be a positive integer"),
    (["--examples", "-2"], "--examples must be a positive integer"),
    (["--eps", "-0.1"], "--eps must be > 0"),
    (["--eps-l2", "nan"], "--eps-l2 must be finite"),
])
def test_bad_sizes_and_strengths_are_errors(tmp_path, capsys, args, message):
    assert main(["analyze", "--workdir", str(tmp_path), "--analyses", "margins", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_runs_are_errors(tmp_path, capsys):
    assert main(["analyze", "--workdir", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    assert main(["analyze", "--workdir", str(tmp_path), "--compare", str(tmp_path / ".")]) == 2
    assert "--compare must name other runs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "--workdir", str(tmp_path), "--baseline", "zeros"])


@pytest.mark.slow
def test_readme_main_job_analyzed_as_a_user_runs_it(tmp_path):
    """The README's main job (SGR CNN on mnist-5k, 2 epochs here) through the installed command,
    every analysis at its defaults (1,000 test digits) with the random-init baseline."""
    import subprocess
    import sys

    from support import subprocess_env

    workdir = tmp_path / "erm"
    env = subprocess_env()
    subprocess.run([sys.executable, "-m", "robustjax", "train", "--config", str(ROOT / "configs/mnist5k/erm.py"),
                    "--workdir", str(workdir), "--set", "epochs=2"], check=True, env=env, cwd=ROOT)
    done = subprocess.run([sys.executable, "-m", "robustjax", "analyze", "--workdir", str(workdir),
                           "--baseline", "random-init"], check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    assert "analyzed 2 models" in done.stdout
    report = json.loads((workdir / "analysis.json").read_text())
    assert list(report["analyses"]) == analysis_names() and report["settings"]["limit"] is None
    assert report["analyses"]["margins"]["results"]["erm"]["summary"]["num_examples"] == 1000
    for entry in report["analyses"].values():
        for fig in entry["figures"]:
            assert (workdir / fig).stat().st_size > 10_000
    # Roth Fig. 1: adversarial perturbations align with v₁ far more than random directions
    head = report["analyses"]["alignment"]["headline"]["erm"]
    assert head["|cos(δ, v₁)|"] > 5 * head["|cos(random, v₁)|"]
