"""The models ``robustjax analyze`` measures: trained runs and the random-initialization baseline.

Each model is an :class:`AnalyzedModel`: a label, the run's config and data, and two
pytree-callables of the inference-mode network,

* ``logits_fn: x[B, ...] -> logits[B, K]`` and
* ``features_fn: x[B, ...] -> φ^{L−1}[B, F]``, the input of the zoo's final ``"logits"`` layer
  (Roth et al. 2019 measure local linearity on ``φ^{L−1}``, §5.3),

both instances of :class:`ModelFunction`, whose variables are pytree leaves and whose Flax
module (compared by value) is static: two runs of the same architecture share every compiled
program of the diagnostics (ARCHITECTURE "compiled once").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from robustjax.nn.batch_chains import without_chains

__all__ = ["ModelFunction", "AnalyzedModel", "load_models", "run_label", "BASELINES"]

BASELINES = ("random-init",)
OUTPUTS = ("logits", "features")
LOGITS_LAYER = "logits"


@jax.tree_util.register_pytree_node_class
class ModelFunction:
    """``x -> model.apply(variables, x, train=False)`` (``output="logits"``) or the input of the
    model's final ``"logits"`` layer (``output="features"``), as a pytree: ``variables`` are the
    leaves, ``(model, output)`` the static part."""

    def __init__(self, model: nn.Module, variables: Any, output: str = "logits"):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}; got {output!r}")
        self.model = model
        self.variables = variables
        self.output = output

    def __call__(self, x):
        if self.output == "logits":
            return self.model.apply(self.variables, x, train=False)
        captured = []

        def capture(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and context.module.name == LOGITS_LAYER:
                captured.append(args[0])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(capture):  # one pass over the whole batch (no slices)
            without_chains(self.model).apply(self.variables, x, train=False)
        if not captured:
            raise ValueError(f"the model has no layer named {LOGITS_LAYER!r} whose input is φ^(L-1)")
        return captured[-1]

    def with_output(self, output: str) -> "ModelFunction":
        return ModelFunction(self.model, self.variables, output)

    def tree_flatten(self):
        return (self.variables,), (self.model, self.output)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], children[0], aux[1])


@dataclasses.dataclass(frozen=True)
class AnalyzedModel:
    """One network to measure. ``kind``: ``"trained"`` or ``"random-init"``; ``workdir``: the
    run it comes from; ``run``: ``robustjax.training.loop.Run`` (config, model, data)."""

    label: str
    kind: str
    workdir: str
    run: Any
    logits_fn: ModelFunction
    features_fn: ModelFunction

    @property
    def config(self):
        return self.run.config

    @property
    def variables(self):
        return self.logits_fn.variables

    def describe(self) -> dict:
        """JSON-safe description: label, kind, workdir, dataset, model, method and its arguments."""
        c = self.config
        return {
            "label": self.label,
            "kind": self.kind,
            "workdir": self.workdir,
            "dataset": c.dataset,
            "model": c.model,
            "method": c.method if self.kind == "trained" else "none (initialization)",
            "method_kwargs": dict(c.get("method_kwargs", {}) or {}) if self.kind == "trained" else {},
            "sn_beta": c.get("sn_beta", None),
            "epochs": c.epochs if self.kind == "trained" else 0,
        }


def run_label(workdir: str, config) -> str:
    """``<directory name>`` plus the method (and its attack) when the name does not say it,
    e.g. ``"erm"``, ``"pgd (adversarial pgd_linf)"``."""
    name = Path(workdir).resolve().name or str(workdir)
    method = str(config.method)
    attack = (config.get("method_kwargs", {}) or {}).get("attack")
    what = method + (f" {attack}" if attack else "")
    return name if what == name else f"{name} ({what})"


def _model(label: str, kind: str, workdir: str, run, params, model_state) -> AnalyzedModel:
    # fresh uncommitted arrays: restored checkpoints are committed to a device and initialized
    # ones are not, and jit compiles once per commitment, so without this every model recompiles
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), {"params": params, **dict(model_state)})
    logits_fn = ModelFunction(run.model, variables, "logits")
    return AnalyzedModel(label, kind, str(workdir), run, logits_fn, logits_fn.with_output("features"))


def random_init_model(trained: AnalyzedModel) -> AnalyzedModel:
    """The network of ``trained`` at its initialization: the same architecture and the run's own
    initial weights (``config.seed``), as the random network of Roth et al. 2019, Fig. 1."""
    from robustjax.training.state import create_train_state

    run = trained.run
    state = create_train_state(run.model, optax.identity(), key=jax.random.PRNGKey(run.config.seed),
                               input_shape=run.input_shape)
    return _model(f"random init ({trained.label})", "random-init", trained.workdir, run, state.params,
                  state.model_state)


def load_models(workdir: str, compare=(), *, baseline: str | None = None) -> list[AnalyzedModel]:
    """Load ``workdir`` and every ``compare`` run (newest checkpoints), then the baseline.

    All runs must use the same dataset (the diagnostics compare them on the same examples).
    Labels are made unique by appending ``#2``, ``#3``.
    """
    from robustjax.training.loop import load_run

    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {list(BASELINES)}; got {baseline!r}")
    workdirs = [str(workdir), *[str(w) for w in compare]]
    resolved = [str(Path(w).resolve()) for w in workdirs]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"--compare must name other runs than --workdir and each other; got {workdirs}")
    models: list[AnalyzedModel] = []
    for w in workdirs:
        run, state = load_run(w)
        if models and run.config.dataset != models[0].config.dataset:
            raise ValueError(
                f"compared runs must use the same dataset: {models[0].workdir!r} is {models[0].config.dataset!r}, "
                f"{w!r} is {run.config.dataset!r}"
            )
        models.append(_model(run_label(w, run.config), "trained", w, run, state.params, state.model_state))
    if baseline == "random-init":
        models.append(random_init_model(models[0]))
    seen: dict[str, int] = {}
    unique = []
    for m in models:
        seen[m.label] = seen.get(m.label, 0) + 1
        unique.append(m if seen[m.label] == 1 else dataclasses.replace(m, label=f"{m.label} #{seen[m.label]}"))
    return unique
