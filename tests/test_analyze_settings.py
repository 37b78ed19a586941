"""Strengths and sizes of ``robustjax analyze``, derived from the runs' configs."""

import math
import types
from pathlib import Path

import numpy as np
import pytest

from robustjax.analyze import AnalysisSettings, default_settings
from robustjax.configs import apply_override, load_config

ROOT = Path(__file__).resolve().parents[1] / "configs" / "mnist5k"


def _run(name, *overrides):
    config = load_config(ROOT / f"{name}.py")
    for a in overrides:
        apply_override(config, a)
    images = np.full((4, 28, 28, 1), 0.5, np.float32)  # E‖x‖₂ = 0.5·28 = 14
    return types.SimpleNamespace(config=config, train_data=types.SimpleNamespace(images=images),
                                 input_shape=(28, 28, 1))


def test_erm_takes_the_suite_strength_and_a_quarter_of_the_linf_corner():
    s = default_settings([_run("erm")])
    assert s.eps_linf == pytest.approx(0.2)  # middle ε of mnist-quick's PGD-20 (0.1, 0.2, 0.3)
    assert s.eps_l2 == pytest.approx(0.2 * 28 / 4)
    assert s.wrm_lambda is None and "suite" in s.eps_source["eps_linf"]


def test_the_first_adversarially_trained_run_sets_the_strengths():
    s = default_settings([_run("erm"), _run("adversarial_pgd_linf"), _run("adversarial_pgd_l2"),
                          _run("adversarial_wrm")])
    assert s.eps_linf == pytest.approx(32 / 255)
    assert s.eps_l2 == pytest.approx(0.05 * 14)  # relative to E‖x‖₂ of the training images
    assert s.wrm_lambda == pytest.approx(0.04 * 14)
    assert s.eps_source["eps_linf"].startswith("training")


def test_explicit_strengths_and_sizes_win():
    s = default_settings([_run("adversarial_pgd_linf")], eps_linf=0.05, eps_l2=0.7, limit=30, examples=10, seed=4)
    assert (s.eps_linf, s.eps_l2, s.limit, s.examples, s.seed) == (0.05, 0.7, 30, 10, 4)
    assert s.eps_source["eps_linf"] == "--eps"


@pytest.mark.parametrize("field,value", [("eps_linf", 0.0), ("eps_l2", -1.0), ("examples", 0), ("limit", -3),
                                         ("batch_size", 1.5), ("eps_linf", math.nan)])
def test_bad_settings_name_the_field(field, value):
    kw = dict(eps_linf=0.1, eps_l2=1.0)
    kw[field] = value
    with pytest.raises(ValueError, match=field):
        AnalysisSettings(**kw)


def test_no_runs_is_an_error():
    with pytest.raises(ValueError, match="at least one trained run"):
        default_settings([])
