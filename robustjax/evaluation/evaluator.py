"""Batch robustness evaluation: run a suite of attacks over a dataset in fixed-size chunks.

Design (the contract of :func:`evaluate`):

* **Bounded memory.** The data stays where it is (NumPy, memmap, a dataset object); one chunk of
  ``batch_size`` examples is on the device at a time. Per-example *results* (a few scalars per
  example and attack) are kept, never adversarial images.
* **All devices.** Each chunk is split over the data mesh of every device (of every process
  under ``jax.distributed``), batch-sharded with the model's parameters replicated, and its
  per-example results come back in order (``placement.py``). A chunk is padded to a multiple of
  the device count, so any ``batch_size`` covers every example exactly once.
* **Chunk-size invariance.** Each attack is ``vmap``-ed over examples with a per-example key
  ``fold_in(fold_in(key, hash(attack, strength)), global_index)``, so every random draw (PGD's
  random start, noise, worst-of-n, random transforms) depends on the example and the attack only.
  Chunked and single-pass evaluation give the same per-example results.
* **One compilation per (attack, strength).** Every chunk is padded to the same number of rows
  (repeating its last example) and the padding is masked out, so each jitted program sees one
  shape.
* **Pointwise worst case.** Results are grouped into threat models: ℓp attacks of the same norm
  and radius ε form one group (e.g. FGSM, PGD-20 and uniform noise at ℓ∞ ε = 0.3, or DeepFool
  thresholded at ℓ2 ε); every other attack/strength is a group of its own. A point is robust
  under a threat model only if it is classified correctly and *every* attack of the group fails
  on it. Robust accuracy ≤ each attack's accuracy ≤ clean accuracy, checked in the code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from robustjax.core import validation as V
from robustjax.evaluation import programs as P
from robustjax.evaluation import suites as _suites
from robustjax.evaluation.chunks import (  # noqa: F401  (re-exported)
    as_arrays,
    as_key,
    check_finite,
    chunk_indices,
    mean_l2_norm,
    pad_indices,
)
from robustjax.evaluation.placement import ChunkPlacement
from robustjax.evaluation.results import (  # noqa: F401  (re-exported)
    AttackResult,
    RobustnessReport,
    check_invariants,
    threat_label,
)


def evaluate(
    logits_fn: Callable,
    data: Any,
    *,
    suite: Any,
    batch_size: int = 256,
    key: Any,
    skip_broken: bool = False,
    attack_labels: str = "true",
    progress: bool = True,
    checks: bool = True,
    name: str | None = None,
    rho_space: Callable | None = None,
    mesh: Mesh | None = None,
) -> RobustnessReport:
    """Run a suite of attacks over ``data`` in chunks; return a :class:`RobustnessReport`.

    Args:
      logits_fn: ``x[B, ...] -> logits[B, K]`` (any JAX function; it is ``vmap``-ed and jitted).
      data: ``(images, labels)``, a mapping, or a ``robustjax.data.load`` object; images float
        in the attacks' ``clip`` range, labels int.
      suite: a registered suite name (``list_suites()``), an :class:`AttackSpec`, or a sequence
        of specs / mappings (see ``suites.py``).
      batch_size: examples per chunk (the last chunk is padded and masked).
      key: PRNG key (or int seed); per-example randomness is ``fold_in`` of it with the attack's
        name and strength and the example's global index.
      skip_broken: attack only points that are still robust (clean correct, not broken by an
        earlier attack of the same threat model or, for ℓp balls, of a smaller ball of the same
        norm), compacted into full batches, attack by attack: ℓp runs go by (norm, ε) ascending.
        Saves most of the work on non-robust models and gives the same worst case; per-attack
        accuracies are then cumulative worst cases in that order, and the masking checks that
        compare attacks are skipped.
      attack_labels: ``"true"`` (default) or ``"predicted"``: the labels the attacks maximize the
        loss of (SGR §7.2 attacks predicted labels to avoid label leaking). Success is always
        measured against the true labels.
      progress: show a tqdm progress bar (examples processed).
      checks: run the gradient-masking checks (``masking.check_report``).
      name: a label for the report (defaults to the suite name).
      rho_space: ``T(x)`` mapping a batch of inputs to the input space a paper measured DeepFool's
        ρ in (``robustjax.units.space_transform``, e.g. ``"per_image"`` for SGR Table 3); then
        DeepFool also reports ``rho_space = mean_i ‖T(x_i + r_i) − T(x_i)‖₂/‖T(x_i)‖₂``.
      mesh: the 1-D ``"data"`` device mesh the chunks are split over (default: every device of
        every process, ``robustjax.core.sharding.data_mesh()``). With several processes every
        process calls ``evaluate`` with the same arguments and gets the same report.

    Robust accuracy follows RobustBench/AutoAttack: correct on the clean input *and* every attack
    of the threat model fails. Invariants (robust ≤ each attack ≤ clean) are checked before
    returning. DeepFool (Moosavi-Dezfooli et al. 2016, eq. 2) also reports
    ``rho = mean_i ‖r_i‖₂/‖x_i‖₂`` over the evaluated points (SGR Table 3, "FOOL"), in pixels and
    (with ``rho_space``) in the paper's units, and ``fooled``, the fraction of evaluated points
    whose prediction it changed (ρ of a clipped run averages unfooled points too).
    """
    if rho_space is not None and not callable(rho_space):
        raise ValueError(f"rho_space must be None or a callable x -> T(x); got {rho_space!r}")
    if not callable(logits_fn):
        raise ValueError(f"logits_fn must be callable x[B, ...] -> logits[B, K]; got {logits_fn!r}")
    specs = _suites.resolve_suite(suite)
    suite_name = suite if isinstance(suite, str) else (name or "custom")
    batch_size = V.check_positive_int(batch_size, name="batch_size")
    V.check_choice(attack_labels, name="attack_labels", allowed=("true", "predicted"))
    key = as_key(key)
    placement = ChunkPlacement(batch_size, mesh=mesh)
    logits_fn = placement.place_model(logits_fn)
    images, labels = as_arrays(data)
    check_finite(images, batch_size)
    n = images.shape[0]

    k_out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct((1,) + images.shape[1:], jnp.float32))
    if not hasattr(k_out, "shape") or len(k_out.shape) != 2:
        raise ValueError(
            f"logits_fn must map x[B, ...] to logits[B, K]; got output {k_out} for one example"
        )
    num_classes = int(k_out.shape[1])
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"data labels must be in [0, {num_classes}); got labels in [{lo}, {hi}]")

    scale = None
    if any(s.eps_scale == "mean_l2_norm" for s in specs):
        scale = mean_l2_norm(images)
    runs = P.plan_runs(specs, key, scale)
    P.attach_programs(logits_fn, runs, rho_space)
    clean_fn = P.clean_program(logits_fn)

    # Per-example storage.
    clean = {
        "pred": np.zeros(n, np.int32), "margin": np.zeros(n, np.float32),
        "max_prob": np.zeros(n, np.float32), "grad_norm": np.zeros(n, np.float32),
        "finite": np.zeros(n, bool),
    }
    store = []
    for _ in runs:
        store.append({
            "pred": np.full(n, -1, np.int32), "margin": np.full(n, np.nan, np.float32),
            "norm_l2": np.full(n, np.nan, np.float32), "norm_linf": np.full(n, np.nan, np.float32),
            "rel_l2": np.full(n, np.nan, np.float32), "finite": np.ones(n, bool),
            "rel_l2_space": np.full(n, np.nan, np.float32),
            "evaluated": np.zeros(n, bool),
        })

    from tqdm.auto import tqdm

    def load(sel: np.ndarray):
        """Host chunk ``sel`` padded to ``placement.rows``; placed (x, y, global index)."""
        psel = pad_indices(sel, placement.rows)
        x_host = np.asarray(images[psel], np.float32)
        placed = placement.place((x_host, np.asarray(labels[psel], np.int32),
                                  psel.astype(np.int32)))
        return psel, x_host, placed

    def attack_batch(run: P.AttackRun, st: dict, sel: np.ndarray, psel, placed) -> np.ndarray:
        xs, ys, gidx = placed
        ya = placement.place(clean["pred"][psel]) if attack_labels == "predicted" else ys
        res = placement.fetch(run.fn(xs, ya, ys, gidx, run.base_key, run.arg))
        k = sel.size
        for f in ("pred", "margin", "norm_l2", "norm_linf", "rel_l2", "finite", "rel_l2_space"):
            if f in res:
                st[f][sel] = res[f][:k]
        st["evaluated"][sel] = True
        return res["pred"][:k] != labels[sel]

    determinism = None
    total = n * (1 + (0 if skip_broken else len(runs)))
    bar = tqdm(total=total, desc=f"evaluate [{suite_name}]", unit="ex",
               disable=not (progress and jax.process_index() == 0), leave=False)
    try:
        # Clean pass (and, without skip_broken, every attack on the same chunk).
        for idx in chunk_indices(n, batch_size):
            psel, x_host, placed = load(idx)
            if determinism is None:
                determinism = P.determinism(logits_fn, x_host[: min(len(idx), 32)])
            out = placement.fetch(clean_fn(placed[0], placed[1]))
            for k in clean:
                clean[k][idx] = out[k][: len(idx)]
            bar.update(len(idx))
            if not skip_broken:
                for run, st in zip(runs, store):
                    bar.set_postfix_str(f"{run.spec.name} {run.label}", refresh=False)
                    attack_batch(run, st, idx, psel, placed)
                    bar.update(len(idx))
        if skip_broken:
            # Attack by attack over the points still robust, compacted into full batches:
            # ℓp runs by (norm, ε) ascending, so a point broken in a smaller ball of the same
            # norm (which lies inside the larger one) is never attacked again.
            correct = clean["pred"] == labels
            broken: dict[str, np.ndarray] = {}
            order = sorted(range(len(runs)), key=lambda i: P.skip_order(runs[i], i))
            bar.total = n + len(order) * int(correct.sum())
            bar.refresh()
            for i in order:
                run, st = runs[i], store[i]
                if run.threat is None:  # DeepFool spans several ℓ2 thresholds
                    alive = correct.copy()
                else:
                    alive = correct & ~P.inherited_broken(broken, runs, run, n)
                sel_all = np.flatnonzero(alive)
                bar.set_postfix_str(f"{run.spec.name} {run.label}", refresh=False)
                succ_all = np.zeros(n, bool)
                for start in range(0, sel_all.size, batch_size):
                    sel = sel_all[start : start + batch_size]
                    psel, _, placed = load(sel)
                    succ_all[sel] = attack_batch(run, st, sel, psel, placed)
                bar.update(int(correct.sum()))
                if run.threat is not None:
                    broken[run.threat] = broken.get(run.threat, np.zeros(n, bool)) | succ_all
    finally:
        bar.close()

    results = []
    for run, st in zip(runs, store):
        results.extend(P.results_of(run, st, labels, specs, scale, clean["pred"]))

    meta = {
        "batch_size": batch_size,
        "devices": placement.devices,
        "processes": jax.process_count(),
        "skip_broken": bool(skip_broken),
        "attack_labels": attack_labels,
        "num_classes": num_classes,
        "input_shape": list(images.shape[1:]),
        "mean_l2_norm": scale,
        "determinism": determinism,
        "name": name or suite_name,
        "rho_space": None if rho_space is None else getattr(rho_space, "space", "custom"),
    }
    report = RobustnessReport(
        suite=suite_name, specs=specs, labels=labels.astype(np.int32), clean_pred=clean["pred"],
        clean_margin=clean["margin"], max_prob=clean["max_prob"], grad_norm=clean["grad_norm"],
        clean_finite=clean["finite"], results=results, meta=meta,
    )
    check_invariants(report)
    if checks:
        from robustjax.evaluation import masking

        report.warnings = masking.check_report(report)
    return report

