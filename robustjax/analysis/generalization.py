"""Generalization gaps and the smoothing effect of adversarial robustness (Wen, Li, Jia 2020).

* :func:`generalization_gaps` — Fig. 3, Table 2 (and Fig. 9 / Table 2 of App. B.6): the
  cross-entropy loss and the error rate of the final model on the *clean training set* and on
  the test set, their gaps (test − train), and the same under an attack. The training
  numbers are measured after training, in inference mode, not the running training objective.
* :func:`max_loss_variation` — App. B.5, Fig. 8, Table 1: for every test example the largest
  loss increase an attack finds in the ε-ball, ``max_{‖δ‖∞≤ε} ℓ(x + δ) − ℓ(x)``, estimated by
  the attack's point and the clean point itself (both lie in the ball, so the estimate is
  ``max(ℓ(x_adv) − ℓ(x), 0)``); the table reports its mean and standard deviation over the
  test set for each ε.

Loss: softmax cross-entropy (``robustjax.core.cross_entropy``); error: ``argmax f ≠ y`` (the
adversarial error is the error at the attacked point, Wen's "adversarial" loss/error). Attacks as
in ``analysis.attacked`` (an ``AttackSpec``, a mapping of its fields, or a callable). Results
follow ``robustjax.analysis.results`` (``summary()``, ``to_json()``); plots in ``plots_wen``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.analysis.attacked import as_key, check_logits_fn, data_arrays, logits_over_data, resolve_attack
from robustjax.analysis.margins import check_logits_and_labels
from robustjax.analysis.results import AnalysisResult, per_example_field
from robustjax.core.losses import cross_entropy

__all__ = ["GeneralizationGaps", "LossVariation", "generalization_gaps", "max_loss_variation", "per_example_loss"]


def per_example_loss(logits: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(cross-entropy [B], correct [B])`` of logits ``[B, K]`` and labels ``[B]`` (float64)."""
    logits, y = check_logits_and_labels(logits, y)
    with jax.enable_x64(True):
        loss = np.asarray(cross_entropy(jnp.asarray(logits), jnp.asarray(y)), np.float64)
    return loss, np.argmax(logits, axis=1) == y


@dataclasses.dataclass(frozen=True)
class GeneralizationGaps(AnalysisResult):
    """Loss and error on the training and test sets, clean and attacked (Wen Fig. 3, Table 2).

    Per-example arrays (two example axes, so not concatenable): ``train_loss [N_train]``,
    ``train_correct``, ``test_loss [N_test]``, ``test_correct``; under ``attack`` (``None``
    without one) ``train_adv_loss``, ``train_adv_correct``, ``test_adv_loss``,
    ``test_adv_correct``. ``attack``: the attack's label; ``eps``: its strength (or ``None``).
    ``summary()``: ``train_loss``, ``test_loss``, ``loss_gap`` (test − train), ``train_error``,
    ``test_error``, ``error_gap`` and the same with the ``adv_`` prefix.
    """

    attack: str | None
    eps: float | None
    train_loss: np.ndarray
    train_correct: np.ndarray
    test_loss: np.ndarray
    test_correct: np.ndarray
    train_adv_loss: np.ndarray | None = None
    train_adv_correct: np.ndarray | None = None
    test_adv_loss: np.ndarray | None = None
    test_adv_correct: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attack": self.attack, "eps": self.eps,
                               "num_train": int(self.train_loss.size), "num_test": int(self.test_loss.size)}
        pairs = [("", self.train_loss, self.train_correct, self.test_loss, self.test_correct)]
        if self.train_adv_loss is not None:
            pairs.append(("adv_", self.train_adv_loss, self.train_adv_correct, self.test_adv_loss, self.test_adv_correct))
        for prefix, trl, trc, tel, tec in pairs:
            tr_loss, te_loss = float(np.mean(trl)), float(np.mean(tel))
            tr_err, te_err = 1.0 - float(np.mean(trc)), 1.0 - float(np.mean(tec))
            out.update({
                f"{prefix}train_loss": tr_loss, f"{prefix}test_loss": te_loss, f"{prefix}loss_gap": te_loss - tr_loss,
                f"{prefix}train_error": tr_err, f"{prefix}test_error": te_err, f"{prefix}error_gap": te_err - tr_err,
            })
        return out


def generalization_gaps(
    logits_fn: Callable,
    train: Any,
    test: Any,
    *,
    attack: Any = None,
    key: Any = 0,
    batch_size: int = 256,
) -> GeneralizationGaps:
    """Train/test loss and error and their gaps, clean and under ``attack`` (Wen et al. 2020,
    §4.1, Fig. 3, Table 2: "Trn Loss", "Test Loss", "Δ Loss").

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` of the trained model in inference mode.
      train, test: ``(images, labels)``, mappings or ``robustjax.data.load`` datasets; the
        training set is the clean one the model was trained on (not augmented).
      attack: ``None`` (clean only), or one attack at one strength: an ``AttackSpec`` with a
        single ε, a mapping of its fields, or a callable ``attack(logits_fn, x, y, key)``
        (Wen: ℓ∞ PGD, 10 steps of 2/255, suite ``wen-linf``).
      key: PRNG key or int seed (random attacks); batch_size: examples per chunk.
    """
    check_logits_fn(logits_fn)
    tr_x, tr_y = data_arrays(train, name="train")
    te_x, te_y = data_arrays(test, name="test")
    if tr_x.shape[1:] != te_x.shape[1:]:
        raise ValueError(f"train and test images must have the same shape; got {tr_x.shape[1:]} and {te_x.shape[1:]}")
    key = as_key(key)
    runs = None
    if attack is not None:
        runs = resolve_attack(attack, images=tr_x)
        if len(runs) != 1:
            raise ValueError(f"attack must have exactly one strength for generalization_gaps; got {len(runs)}: "
                             f"{[r.label for r in runs]}")
        # ε relative to E‖x‖₂ is resolved on the training set and used on both splits
    values: dict[str, Any] = {}
    for split, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
        clean, advs = logits_over_data(logits_fn, x, y, runs, key=jax.random.fold_in(key, int(split == "test")),
                                       batch_size=batch_size)
        values[f"{split}_loss"], values[f"{split}_correct"] = per_example_loss(clean, y)
        if advs:
            values[f"{split}_adv_loss"], values[f"{split}_adv_correct"] = per_example_loss(advs[0], y)
    return GeneralizationGaps(attack=None if runs is None else runs[0].label,
                              eps=None if runs is None else runs[0].eps, **values)


@dataclasses.dataclass(frozen=True)
class LossVariation(AnalysisResult):
    """Maximal loss variation under attack (Wen App. B.5, Fig. 8, Table 1).

    ``labels``: one per attack strength; ``eps [E]`` (NaN where the attack has no scalar
    strength); per example ``clean_loss [N]``, ``attacked_loss [N, E]`` and ``variation [N, E]
    = max(attacked_loss − clean_loss, 0)``. ``summary()``: mean ± std of the variation per
    strength (the table's entries).
    """

    labels: tuple
    eps: np.ndarray
    clean_loss: np.ndarray = per_example_field()
    attacked_loss: np.ndarray = per_example_field()
    variation: np.ndarray = per_example_field()

    @property
    def mean(self) -> np.ndarray:
        return np.mean(self.variation, axis=0)

    @property
    def std(self) -> np.ndarray:
        return np.std(self.variation, axis=0)

    def summary(self) -> dict[str, Any]:
        return {
            "num_examples": int(self.clean_loss.size),
            "eps": [float(e) for e in self.eps],
            "mean": {lab: float(m) for lab, m in zip(self.labels, self.mean)},
            "std": {lab: float(s) for lab, s in zip(self.labels, self.std)},
        }


def max_loss_variation(
    logits_fn: Callable,
    data: Any,
    *,
    attack: Any,
    key: Any = 0,
    batch_size: int = 256,
) -> LossVariation:
    """Per-example maximal loss increase in the attack's ball, ``max(ℓ(x_adv) − ℓ(x), 0)``,
    for every strength of ``attack`` (Wen et al. 2020, App. B.5, Table 1: mean ± std over the
    test set at ℓ∞ ε ∈ {1, 2, 4}/255; it decreases with the adversarial-training strength).

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]``.
      data: the (test) set: ``(images, labels)``, a mapping or a dataset object.
      attack: an ``AttackSpec`` (all its strengths, e.g. ℓ∞ PGD at ε = 1/255, 2/255, 4/255), a
        mapping of its fields, or a callable ``attack(logits_fn, x, y, key) -> x_adv``.
      key: PRNG key or int seed; batch_size: examples per chunk.
    """
    check_logits_fn(logits_fn)
    images, labels = data_arrays(data, name="data")
    runs = resolve_attack(attack, images=images)
    clean, advs = logits_over_data(logits_fn, images, labels, runs, key=as_key(key), batch_size=batch_size)
    clean_loss, _ = per_example_loss(clean, labels)
    attacked = np.stack([per_example_loss(a, labels)[0] for a in advs], axis=1)
    return LossVariation(
        labels=tuple(r.label for r in runs),
        eps=np.array([np.nan if r.eps is None else r.eps for r in runs], np.float64),
        clean_loss=clean_loss, attacked_loss=attacked,
        variation=np.maximum(attacked - clean_loss[:, None], 0.0),
    )
