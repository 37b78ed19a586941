"""Config loading and ``--set`` overrides: typos and wrong types fail loudly, naming the key."""

from pathlib import Path

import pytest

from robustjax.configs import apply_override, base_config, config_from_json, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_file_loads_and_is_locked():
    files = sorted((ROOT / "configs").glob("*/*.py"))
    assert files, "no config files found"
    for path in files:
        config = load_config(path)
        assert config.is_locked
        with pytest.raises(AttributeError):
            config.not_a_key = 1


def test_override_sets_nested_values_with_types():
    config = base_config()
    config.lock()
    apply_override(config, "optimizer.learning_rate=0.1")
    apply_override(config, "epochs=3")
    apply_override(config, "optimizer.decay_epochs=[2, 4]")
    apply_override(config, "dataset=mnist-5k")
    assert config.optimizer.learning_rate == 0.1
    assert config.epochs == 3
    assert config.optimizer.decay_epochs == (2, 4)
    apply_override(config, "optimizer.learning_rate=1")  # int literal into a float field
    assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)


def test_misspelled_key_is_named_with_suggestion():
    config = base_config()
    config.lock()
    with pytest.raises(ValueError, match=r"unknown config key 'optimizer.learing_rate'.*optimizer.learning_rate"):
        apply_override(config, "optimizer.learing_rate=0.1")
    with pytest.raises(ValueError, match="unknown config key 'epoch'"):
        apply_override(config, "epoch=3")
    with pytest.raises(ValueError, match="key=value"):
        apply_override(config, "epochs")


def test_wrong_type_is_named():
    config = base_config()
    config.lock()
    with pytest.raises(ValueError, match="'epochs'"):
        apply_override(config, "epochs=three")


def test_missing_config_file():
    with pytest.raises(ValueError, match="does not exist"):
        load_config(ROOT / "configs" / "nope.py")


def test_json_round_trip():
    config = load_config(ROOT / "configs" / "mnist5k" / "erm.py")
    again = config_from_json(config.to_json())
    assert again.to_dict() == config.to_dict()
