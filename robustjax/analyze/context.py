"""Data and shared intermediate results of one ``robustjax analyze`` call.

Several diagnostics need the same per-model quantities (Roth's ℓ2 PGD perturbations feed the
alignment, linearity, σ-path and Taylor diagnostics; the test logits feed the margins and
histograms; the layer spectra and input-gradient norms feed the capacity scores): the
:class:`AnalysisContext` computes each once per model and caches it. Every model sees the same
examples and the same random draws (keys depend on the purpose, not on the model), so the runs
of a ``--compare`` differ only by their networks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis import concatenate_results
from robustjax.analyze.models import AnalyzedModel
from robustjax.analyze.settings import AnalysisSettings
from robustjax.attacks import pgd

__all__ = ["AnalysisContext", "pgd_perturbation", "chunked"]


@functools.partial(jax.jit, static_argnames=("norm", "steps"))
def _pgd_delta(logits_fn, x, y, key, eps, step_size, *, norm, steps):
    # logits_fn is a pytree argument and eps/step_size are traced: one program for every run
    # of the same architecture and every strength
    x_adv = pgd(logits_fn, x, y, eps=eps, norm=norm, step_size=step_size, steps=steps, key=key,
                random_start=True, unroll=False)
    return x_adv - x


def pgd_perturbation(logits_fn, x, y, *, eps: float, norm: float, steps: int, step_size: float, key) -> np.ndarray:
    """``x_adv − x`` of PGD (random start, true labels ``y``, clip to [0, 1]), as NumPy."""
    return np.asarray(_pgd_delta(logits_fn, jnp.asarray(x), jnp.asarray(y), key, jnp.float32(eps),
                                 jnp.float32(step_size), norm=float(norm), steps=int(steps)))


@jax.jit
def _logits(logits_fn, x):
    return logits_fn(x)


def chunked(fn: Callable[[int, int], Any], n: int, batch_size: int) -> Any:
    """``fn(start, stop)`` over ``[0, n)`` in chunks of ``batch_size``; results concatenated
    (``concatenate_results`` for ``AnalysisResult``s, ``np.concatenate`` for arrays)."""
    parts = [fn(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return concatenate_results(parts)


@dataclasses.dataclass
class AnalysisContext:
    """The test (and training) examples, settings, key and per-model caches of one call.

    ``test``/``train``: ``(images, labels)`` NumPy arrays (the first ``limit`` test examples and
    ``train_limit`` training examples); ``x``/``y``: the first ``settings.examples`` test
    examples, for the Jacobian and path diagnostics.
    """

    settings: AnalysisSettings
    models: list[AnalyzedModel]
    test: tuple[np.ndarray, np.ndarray]
    train: tuple[np.ndarray, np.ndarray]
    key: jax.Array
    cache: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def create(cls, models: list[AnalyzedModel], settings: AnalysisSettings) -> "AnalysisContext":
        run = models[0].run
        test_x, test_y = np.asarray(run.test_data.images), np.asarray(run.test_data.labels)
        n = len(test_y) if settings.limit is None else min(settings.limit, len(test_y))
        train_x, train_y = np.asarray(run.train_data.images), np.asarray(run.train_data.labels)
        m = min(n if settings.train_limit is None else settings.train_limit, len(train_y))
        return cls(settings=settings, models=models, test=(test_x[:n], test_y[:n]),
                   train=(train_x[:m], train_y[:m]), key=jax.random.PRNGKey(settings.seed))

    # --- examples and keys -------------------------------------------------------------------

    @property
    def x(self) -> np.ndarray:
        return self.test[0][: self.settings.examples]

    @property
    def y(self) -> np.ndarray:
        return self.test[1][: self.settings.examples]

    @property
    def input_dim(self) -> int:
        return math.prod(self.test[0].shape[1:])

    def key_for(self, purpose: str) -> jax.Array:
        """A key that depends on ``purpose`` and the seed only (the same for every model)."""
        return jax.random.fold_in(self.key, zlib.crc32(purpose.encode()) & 0x7FFFFFFF)

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    # --- shared quantities -------------------------------------------------------------------

    def step_size(self, eps: float) -> float:
        return self.settings.step_factor * float(eps)

    def perturbation(self, model: AnalyzedModel, norm: str, eps: float | None = None) -> np.ndarray:
        """PGD perturbations ``δ = x_adv − x`` of ``self.x`` (``norm`` ``"2"``: Roth's ℓ2 PGD at
        ``eps_l2``; ``"inf"``: ℓ∞ PGD at ``eps_linf``; or at ``eps``), true labels."""
        s = self.settings
        if norm not in ("2", "inf"):
            raise ValueError(f"norm must be '2' or 'inf'; got {norm!r}")
        eps = float(eps if eps is not None else (s.eps_l2 if norm == "2" else s.eps_linf))
        p = 2.0 if norm == "2" else math.inf

        def compute():
            key = self.key_for(f"pgd-{norm}-{eps!r}")
            return chunked(lambda a, b: pgd_perturbation(
                model.logits_fn, self.x[a:b], self.y[a:b], eps=eps, norm=p, steps=s.pgd_steps,
                step_size=self.step_size(eps), key=jax.random.fold_in(key, a)), len(self.y), s.batch_size)

        return self.cached(("perturbation", model.label, norm, eps), compute)

    def random_directions(self) -> np.ndarray:
        """Gaussian ``N(0, I)`` directions, one per example of ``self.x`` (the same for all models)."""
        return self.cached(("random",), lambda: np.asarray(
            jax.random.normal(self.key_for("random-directions"), self.x.shape, jnp.float32)))

    def test_logits(self, model: AnalyzedModel) -> np.ndarray:
        """Clean logits ``[N, K]`` of the test examples (float64)."""
        x = self.test[0]
        return self.cached(("logits", model.label), lambda: chunked(
            lambda a, b: np.asarray(_logits(model.logits_fn, jnp.asarray(x[a:b])), np.float64),
            len(x), self.settings.batch_size))

    def spectral_report(self, model: AnalyzedModel):
        """``network_spectral_report`` of the model's layers (Wen Fig. 1a, Farnia Φ)."""
        from robustjax.analysis import network_spectral_report

        return self.cached(("spectra", model.label), lambda: network_spectral_report(
            model.run.model, model.variables, model.run.input_shape, key=self.key_for("spectra")))

    def gradient_norms(self, model: AnalyzedModel):
        """``input_gradient_norms`` on the test examples (Farnia Fig. 2b, κ of Thms. 2–3)."""
        from robustjax.analysis import input_gradient_norms

        x, y = self.test
        return self.cached(("gradnorms", model.label), lambda: input_gradient_norms(
            model.logits_fn, x, y, batch_size=min(self.settings.batch_size, len(y))))
