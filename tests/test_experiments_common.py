"""The shared plumbing of experiments/: verdicts against the seed spread, configs through the
public loading path with the quick/CPU/paper sets, refusing to reuse a run trained otherwise."""

import json
import math

import numpy as np
import pytest

from experiments import common


def _settings(tmp_path, *argv):
    p = common.parser("soar2020", "test", default_examples=100, default_seeds=3)
    return common.settings(p.parse_args(["--workdir", str(tmp_path), *argv]))


def test_verdict_is_judged_against_the_seed_spread():
    assert common.verdict([0.9, 0.91, 0.92], [0.8, 0.85, 0.89]) == common.HOLDS
    # means agree with the claim, but the seed ranges overlap
    assert common.verdict([0.9, 0.95, 0.86], [0.8, 0.85, 0.88]) == common.WEAK
    assert common.verdict([0.8], [0.9]) == common.FAILS
    assert common.verdict([0.9], [0.85], margin=0.1) == common.FAILS
    assert common.all_hold([common.HOLDS, common.WEAK]) == common.WEAK
    assert common.all_hold([common.HOLDS, common.FAILS, common.WEAK]) == common.FAILS
    assert common.all_hold([common.NOT_MEASURED]) == common.NOT_MEASURED
    with pytest.raises(ValueError, match="at least one"):
        common.verdict([], [1.0])


def test_spread_matches_numpy():
    st = common.spread([0.1, 0.4, 0.7])
    assert st["mean"] == pytest.approx(0.4)
    assert st["std"] == pytest.approx(np.std([0.1, 0.4, 0.7], ddof=1))
    assert (st["min"], st["max"], st["n"]) == (0.1, 0.7, 3)
    assert common.spread([0.5])["std"] == 0.0
    assert common.fmt(st).endswith("(3 seeds)")


def test_settings_defaults_depend_on_quick(tmp_path):
    s = _settings(tmp_path)
    assert (s.seeds, s.examples, s.mode) == ((0, 1, 2), 100, "cpu")
    q = _settings(tmp_path, "--quick")
    assert (q.seeds, q.examples, q.mode) == ((0,), 32, "quick")
    with pytest.raises(ValueError, match="--examples"):
        _settings(tmp_path, "--examples", "0")


def test_configs_come_from_the_config_files_with_overrides(tmp_path):
    cpu = common.make_config(_settings(tmp_path), "adversarial_pgd_linf", "cifar10_adv7", seed=2,
                             cpu_overrides=("epochs=3", "method_kwargs.eps=0.1"))
    assert (cpu.dataset, cpu.epochs, cpu.seed, cpu.method_kwargs.eps) == ("mnist-5k", 3, 2, 0.1)
    quick = common.make_config(_settings(tmp_path, "--quick"), "erm", "cifar10_erm", cpu_overrides=("epochs=3",))
    assert (quick.epochs, quick.train_limit) == (1, 512)
    paper = common.make_config(_settings(tmp_path, "--config-set", "paper"), "erm", "cifar10_erm",
                               cpu_overrides=("epochs=3",))
    assert paper.dataset == "cifar10" and paper.epochs != 3  # CPU overrides stay off the paper set
    with pytest.raises(ValueError, match="no paper-scale config"):
        common.make_config(_settings(tmp_path, "--config-set", "paper"), "erm", None)
    with pytest.raises(ValueError, match="unknown config key"):
        common.make_config(_settings(tmp_path), "erm", overrides=("epoch=3",))


def test_resume_refuses_a_run_trained_with_another_config(tmp_path):
    s = _settings(tmp_path, "--resume")
    config = common.make_config(s, "erm")
    workdir = common.run_dir(s, "erm", 0)
    workdir.mkdir(parents=True)
    stored = json.loads(config.to_json())
    stored["epochs"] = 99
    (workdir / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"another config \(keys \['epochs'\]\)"):
        common.train(s, "erm", config, seed=0, log=lambda *_: None)


def test_results_are_plain_json(tmp_path):
    out = common.to_jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": (1, math.nan), 3: np.bool_(True)})
    assert out == {"a": 0.5, "b": [0, 1, 2], "c": [1, "nan"], "3": True}
    json.dumps(out)
