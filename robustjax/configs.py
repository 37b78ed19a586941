"""Run configs: the defaults every config starts from, loading a config file, ``--set`` overrides.

A config file (``configs/<dataset>/<method>.py``) defines ``get_config()`` returning an
``ml_collections.ConfigDict`` built from :func:`base_config`. Configs are locked: setting a key
that does not exist is an error naming the key (and the nearest existing keys), so a typo in
``--set optimizer.learing_rate=0.1`` never passes silently.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
from pathlib import Path

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every run config (CPU-sized ERM on mnist-5k)."""
    c = ml_collections.ConfigDict()
    c.dataset = "mnist-5k"
    c.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.eval_split = "test"
    c.model = "sgr_cnn"
    c.model_kwargs = ml_collections.ConfigDict({"width": "mnist"})
    c.method = "erm"
    # spectral normalization of every Dense/Conv operator (Farnia et al. 2019): None = off
    c.sn_beta = ml_collections.FieldReference(None, field_type=float)
    c.sn_kwargs = ml_collections.ConfigDict({"mode": "operator", "grad_through_sigma": True, "iters": 1})
    c.method_kwargs = ml_collections.ConfigDict()
    # the input space the paper stated the method's strengths in (robustjax.units converts them
    # to [0, 1] pixels) and the space DeepFool's ρ is reported in next to pixels
    c.units = ml_collections.ConfigDict({"space": "pixel", "rho_space": "pixel"})
    c.seed = 0
    c.epochs = 10
    c.batch_size = 128
    c.eval_batch_size = 500
    c.augment = False
    # pad/crop/flip options of the augmentation (robustjax.data.augmentation): pad width, pad
    # value (a pixel value; SGR pads CIFAR10 with mid-range 0.5) and the horizontal flip
    c.augment_kwargs = ml_collections.ConfigDict({"pad": 4, "fill": 0.0, "flip": True})
    # train on the first ``train_limit`` training examples (None: all), and with ``random_labels``
    # on labels drawn uniformly at random per example (Zhang et al. 2017; Farnia et al. 2019,
    # Fig. 4), fixed by ``seed``; the test split keeps its true labels
    c.train_limit = ml_collections.FieldReference(None, field_type=int)
    c.random_labels = False
    c.keep_checkpoints = 3
    # fine-tune from another run's newest checkpoint (SOAR starts from a standard model)
    c.init_from = ml_collections.FieldReference(None, field_type=str)
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adam",
            "learning_rate": 1e-3,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 0.0,
            "schedule": "constant",
            "decay_epochs": (),
            "decay_factor": 0.1,
            "grad_clip_norm": 0.0,
        }
    )
    c.evaluation = ml_collections.ConfigDict({"suite": "mnist-quick", "batch_size": 500, "seed": 0})
    return c


def load_config(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """Load ``get_config()`` from a Python config file and lock it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"robustjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {str(path)!r} must define get_config()")
    config = module.get_config()
    config.lock()
    return config


def _all_keys(config, prefix: str = "") -> list[str]:
    keys = []
    for k, v in config.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, ml_collections.ConfigDict):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(config: ml_collections.ConfigDict, assignment: str) -> None:
    """Apply one ``key.path=value`` override in place (value parsed as a Python literal).

    Raises ``ValueError`` naming the key when it does not exist or the value has the wrong type.
    """
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value; got {assignment!r}")
    key, text = assignment.split("=", 1)
    key = key.strip()
    node = config
    parts = key.split(".")
    for i, part in enumerate(parts):
        is_last = i == len(parts) - 1
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            close = difflib.get_close_matches(key, _all_keys(config), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}")
        if not is_last:
            node = node[part]
    value = _parse_value(text)
    old = node[parts[-1]]
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        node[parts[-1]] = value
    except (TypeError, KeyError) as e:
        raise ValueError(f"config key {key!r}: cannot set {value!r} ({e})") from None


def config_from_json(text: str) -> ml_collections.ConfigDict:
    """Rebuild a locked config from the ``config.json`` a run wrote."""
    raw = json.loads(text)
    base = base_config()

    def merge(node, values):
        for k, v in values.items():
            # free-form keyword blocks (model_kwargs, method_kwargs) are replaced, not merged
            if isinstance(v, dict) and not k.endswith("_kwargs") and isinstance(node.get(k), ml_collections.ConfigDict):
                merge(node[k], v)
            elif isinstance(v, dict):
                with node.ignore_type():
                    node[k] = ml_collections.ConfigDict(v)
            else:
                if isinstance(v, list):
                    v = tuple(v)
                with node.ignore_type():
                    node[k] = v

    merge(base, raw)
    base.lock()
    return base
