"""The fit loop: an ERM epoch lowers the loss, metrics and checkpoints are written, bad configs fail."""

import json

import jax
import numpy as np
import pytest

from robustjax.configs import apply_override, base_config
from robustjax.training.loop import build_run, fit, load_run


def _config(**overrides):
    config = base_config()
    config.lock()
    for k, v in overrides.items():
        apply_override(config, f"{k}={v!r}")
    return config


def test_one_erm_epoch_lowers_the_loss_and_writes_metrics(tmp_path):
    config = _config(model="mlp", model_kwargs={}, epochs=1, batch_size=100)
    run = build_run(config)
    # test loss of the untrained model, computed independently of the loop
    from robustjax.training.optimizers import make_optimizer
    from robustjax.training.loop import initial_state
    import optax

    state0 = initial_state(run, make_optimizer(config.optimizer, steps_per_epoch=1, epochs=1))
    logits0 = run.model.apply(state0.variables(), np.asarray(run.test_data.images), train=False)
    loss0 = float(optax.softmax_cross_entropy_with_integer_labels(logits0, np.asarray(run.test_data.labels)).mean())

    state, history = fit(config, tmp_path, progress=False)
    assert int(state.step) == len(run.train_data) // 100
    assert history[-1]["test_loss"] < 0.5 * loss0
    assert history[-1]["test_accuracy"] > 0.8
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == history
    # the checkpoint restores to the same parameters
    _, restored = load_run(tmp_path)
    for a, b in zip(jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(restored.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the test accuracy in the metrics is the accuracy over every test example
    logits = run.model.apply(restored.variables(), np.asarray(run.test_data.images), train=False)
    acc = float(np.mean(np.argmax(logits, -1) == np.asarray(run.test_data.labels)))
    assert history[-1]["test_accuracy"] == pytest.approx(acc, abs=1e-6)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"dataset": "mnist-6k"}, "mnist-6k"),
        ({"model": "resnet99"}, "resnet99"),
        ({"batch_size": 100_000}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"method": "magic"}, "method"),
    ],
)
def test_bad_configs_fail_naming_the_problem(tmp_path, overrides, match):
    config = _config(**overrides)
    with pytest.raises(ValueError, match=match):
        fit(config, tmp_path, progress=False)


def test_non_positive_learning_rate_fails(tmp_path):
    config = _config(**{"optimizer.learning_rate": 0.0})
    with pytest.raises(ValueError, match="learning_rate"):
        fit(config, tmp_path, progress=False)


def test_load_run_without_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        load_run(tmp_path)


def test_training_examples_limit_and_random_labels():
    from robustjax import data as rj_data
    from robustjax.training.loop import training_examples

    full = rj_data.load("mnist-5k", "train")
    small = training_examples(full, limit=300)
    np.testing.assert_array_equal(small.labels, full.labels[:300])
    rand = training_examples(full, limit=300, random_labels=True, seed=1)
    np.testing.assert_array_equal(rand.images, full.images[:300])
    assert rand.labels.min() >= 0 and rand.labels.max() < 10
    assert 0.8 < np.mean(rand.labels != full.labels[:300]) < 0.97  # ~90 % wrong, as chance says
    again = training_examples(full, limit=300, random_labels=True, seed=1)
    np.testing.assert_array_equal(rand.labels, again.labels)
    other = training_examples(full, limit=300, random_labels=True, seed=2)
    assert np.any(other.labels != rand.labels)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="train_limit"):
            training_examples(full, limit=bad)
    config = _config(train_limit=256, random_labels=True)
    run = build_run(config)
    assert len(run.train_data) == 256 and len(run.test_data) == 1000
    np.testing.assert_array_equal(run.train_data.labels, training_examples(full, limit=256, random_labels=True).labels)


def test_fit_warns_when_every_step_maps_fresh_memory(tmp_path, monkeypatch):
    # issue 18: fit counts the page faults of the steps after the first and passes them to
    # core.host_memory.fault_hint. A fake counter that grows by 40,000 pages per reading makes
    # every watched step fault 40,000 pages; one growing by 10 makes none.
    import itertools
    import warnings

    from robustjax.core import host_memory
    from robustjax.training import loop

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setitem(host_memory._state, "arena_max", None)
    monkeypatch.setitem(host_memory._state, "tuned", True)
    monkeypatch.setattr(host_memory, "_glibc", lambda: object())
    config = _config(model="mlp", model_kwargs={}, epochs=1, batch_size=64, train_limit=320)
    counter = itertools.count(0, 40_000)
    monkeypatch.setattr(loop.host_memory, "minor_page_faults", lambda: next(counter))
    with pytest.warns(RuntimeWarning, match="MALLOC_ARENA_MAX=1") as record:
        fit(config, tmp_path / "faulting", progress=False)
    hints = [str(w.message) for w in record if "fresh memory" in str(w.message)]
    assert len(hints) == 1 and "40000, 40000, 40000" in hints[0]  # once per run, steps 2-4
    quiet = itertools.count(0, 10)
    monkeypatch.setattr(loop.host_memory, "minor_page_faults", lambda: next(quiet))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit(config, tmp_path / "quiet", progress=False)
