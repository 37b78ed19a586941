"""Transfer (black-box) attack matrix: adversarial examples crafted on each source model,
accuracy of each target model on them (SGR, Roth et al. 2018, Table 4; SOAR, Ma et al. 2020,
Tables 3–4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from robustjax.core import validation as V
from robustjax.evaluation import chunks as _chunks
from robustjax.evaluation import programs as _programs
from robustjax.evaluation import registry as _registry
from robustjax.evaluation import suites as _suites
from robustjax.evaluation.placement import ChunkPlacement


@dataclasses.dataclass
class TransferMatrix:
    """``accuracy[t, s]``: fraction of examples that target ``targets[t]`` classifies correctly
    both clean and on the adversarial examples crafted on source ``sources[s]`` (the papers'
    layout: rows = evaluated model, columns = source). ``white_box[t]``: the same with examples
    crafted on the target itself. ``warnings``: ``transfer_stronger_than_whitebox`` flags."""

    targets: list[str]
    sources: list[str]
    attack: str
    eps_label: str
    n: int
    clean_accuracy: np.ndarray
    accuracy: np.ndarray
    white_box: np.ndarray
    warnings: list = dataclasses.field(default_factory=list)

    def table(self) -> str:
        from robustjax.evaluation.reports import pct

        head = ["target \\ source", "clean"] + self.sources + ["white-box"]
        rows = []
        for t, name in enumerate(self.targets):
            rows.append([name, pct(self.clean_accuracy[t])]
                        + [pct(a) for a in self.accuracy[t]] + [pct(self.white_box[t])])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [f"transfer accuracy (%) under {self.attack} eps={self.eps_label}, {self.n} examples",
               fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
        for w in self.warnings:
            out.append(f"[{w.name}] {w.message}")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        from robustjax.evaluation.reports import pct

        return {
            "attack": self.attack,
            "eps": self.eps_label,
            "n_examples": self.n,
            "targets": self.targets,
            "sources": self.sources,
            "clean_acc": {t: pct(a) for t, a in zip(self.targets, self.clean_accuracy)},
            "white_box_acc": {t: pct(a) for t, a in zip(self.targets, self.white_box)},
            "transfer_acc": {
                t: {s: pct(self.accuracy[i, j]) for j, s in enumerate(self.sources)}
                for i, t in enumerate(self.targets)
            },
            "warnings": [w.to_dict() for w in self.warnings],
        }


def _check_models(models: Any, name: str) -> dict[str, Callable]:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"{name} must be a non-empty mapping name -> logits_fn; got {models!r}")
    for k, f in models.items():
        if not callable(f):
            raise ValueError(f"{name}[{k!r}] must be a callable logits_fn; got {f!r}")
    return dict(models)


def transfer_matrix(
    models: Mapping[str, Callable],
    data: Any,
    attack: Any,
    *,
    key: Any,
    sources: Mapping[str, Callable] | None = None,
    eps: Any = None,
    batch_size: int = 256,
    progress: bool = True,
    tolerance: float = 0.01,
    mesh: Mesh | None = None,
) -> TransferMatrix:
    """Accuracy of every target in ``models`` on adversarial examples crafted on every source
    (``sources``, default: the same models), plus each target's white-box accuracy.

    ``attack``: an :class:`AttackSpec`, a mapping, or a key of ``TRANSFER_ATTACKS``
    (``"sgr-table4-mnist-32"``, ``"soar-table3"``, ...) with one strength (or pick one with
    ``eps``). Data is streamed in chunks; per-example keys depend on the source name and the
    example index (as in :func:`evaluate`), so numbers do not depend on ``batch_size``; each
    chunk is split over ``mesh`` (default: every device) as in :func:`evaluate`.
    """
    targets = _check_models(models, "models")
    srcs = targets if sources is None else _check_models(sources, "sources")
    if isinstance(attack, str):
        if attack not in _suites.TRANSFER_ATTACKS:
            raise ValueError(
                f"unknown transfer attack {attack!r}; known: {sorted(_suites.TRANSFER_ATTACKS)}"
            )
        spec = _suites.TRANSFER_ATTACKS[attack]
    else:
        spec = _suites.spec_from_dict(attack)
    if spec.kind in _suites.MINIMAL_KINDS:
        raise ValueError("transfer_matrix needs a bounded attack (not DeepFool)")
    if eps is not None:
        spec = spec.replace(eps=(eps,))
    if len(spec.eps) != 1:
        raise ValueError(
            f"transfer attack {spec.name!r} has {len(spec.eps)} strengths {list(spec.eps)}; "
            "pass eps= to pick one"
        )
    batch_size = V.check_positive_int(batch_size, name="batch_size")
    key = _chunks.as_key(key)
    placement = ChunkPlacement(batch_size, mesh=mesh)
    images, labels = _chunks.as_arrays(data)
    n = images.shape[0]
    scale = _chunks.mean_l2_norm(images) if spec.eps_scale == "mean_l2_norm" else None
    strength, _ = _programs.resolve_strength(spec, spec.eps[0], scale)
    label = _suites.format_strength(spec, spec.eps[0])
    traced = _registry.is_traced(spec)
    call = _registry.attack_call(spec, None if traced else strength)
    arg = jnp.asarray(strength, jnp.float32) if traced else None
    random = _registry.is_random(spec)

    crafters: dict[str, Callable] = {}
    all_sources = dict(srcs)
    for t, f in targets.items():
        all_sources.setdefault(t, f)  # white-box for targets that are not sources

    def make_crafter(fn):
        def craft(x, y, gidx, base_key, strength_arg):
            if not random:
                return call(fn, x, y, base_key, strength_arg)
            keys = jax.vmap(lambda i: jax.random.fold_in(base_key, i))(gidx)
            return jax.vmap(
                lambda xi, yi, ki: call(fn, xi[None], yi[None], ki, strength_arg)[0]
            )(x, y, keys)

        return jax.jit(craft)

    for s, f in all_sources.items():
        crafters[s] = make_crafter(f)
    predict = {t: jax.jit(lambda x, f=f: jnp.argmax(f(x), axis=1)) for t, f in targets.items()}
    base_keys = {s: _programs.run_key(key, f"transfer:{s}", label) for s in all_sources}

    src_names, tgt_names = list(srcs), list(targets)
    clean_ok = np.zeros((len(tgt_names), n), bool)
    adv_ok = np.zeros((len(tgt_names), len(src_names), n), bool)
    white_ok = np.zeros((len(tgt_names), n), bool)
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc=f"transfer [{spec.name}]", unit="ex",
               disable=not (progress and jax.process_index() == 0), leave=False)
    try:
        for idx in _chunks.chunk_indices(n, batch_size):
            pidx = _chunks.pad_indices(idx, placement.rows)
            m = len(idx)
            x, y, gidx = placement.place((np.asarray(images[pidx], np.float32),
                                          np.asarray(labels[pidx], np.int32),
                                          pidx.astype(np.int32)))
            yn = labels[idx]

            def correct(name, inputs):
                return placement.fetch(predict[name](inputs))[:m] == yn

            for t, name in enumerate(tgt_names):
                clean_ok[t, idx] = correct(name, x)
            adv = {s: crafters[s](x, y, gidx, base_keys[s], arg) for s in all_sources}
            for t, name in enumerate(tgt_names):
                for s, sname in enumerate(src_names):
                    adv_ok[t, s, idx] = correct(name, adv[sname])
                white_ok[t, idx] = correct(name, adv[name])
            bar.update(m)
    finally:
        bar.close()

    acc = np.mean(adv_ok & clean_ok[:, None, :], axis=2)
    white = np.mean(white_ok & clean_ok, axis=1)
    matrix = TransferMatrix(
        targets=tgt_names, sources=src_names, attack=spec.name, eps_label=label, n=n,
        clean_accuracy=np.mean(clean_ok, axis=1), accuracy=acc, white_box=white,
    )
    from robustjax.evaluation import masking

    matrix.warnings = masking.check_transfer(matrix, tolerance=tolerance)
    return matrix
