"""Units of the papers' strengths, converted to robustjax's [0, 1] pixels in one place.

robustjax keeps data in [0, 1] pixels and standardizes inside the model (its first layer), so
every strength an attack or a regularizer receives is in pixel units. Several papers state their
strengths for another input space. A config says which one (``config.units.space``; the
DeepFool ratio ρ of the evaluation: ``config.units.rho_space``), writes the paper's numbers, and
:func:`resolve_method_kwargs` converts them when the run is built (``robustjax train`` prints the
table of :func:`format_conversions`).

Spaces (``SPACES``; ``x`` in [0, 1] pixels, per-channel data-set constants ``μ_c``, ``σ_c``):

* ``pixel`` — ``x`` itself (SOAR §5, Wen App. B.1, SGR's ε "in units of 1/255", Farnia's MNIST).
* ``shifted`` — ``x − 0.5`` (SGR footnote 3 shifts CIFAR10 by −0.5). Lengths are unchanged; only
  ratios to ``‖x‖`` (DeepFool's ρ, a radius relative to ``E‖x‖``) differ.
* ``standardized`` — ``(x − μ_c)/σ_c`` per channel, a diagonal map ``D = diag(1/σ)``.
* ``per_image`` (alias ``whitened``) — every image to zero mean and unit variance
  (``(x − m(x))/s(x)``, TensorFlow's ``per_image_standardization``: SGR §4.1, Roth 2019 App. 7.3,
  Zhang et al.'s whitening used by Farnia et al. on CIFAR10/SVHN).

Conversion. If the paper's input is ``z = (x − c)/s``, a perturbation ``δ_z`` is ``δ_x = s·δ_z``,
the input gradient is ``∇_x = ∇_z / s``, so

* a length (ℓp radius ε, step size α, SOAR's finite-difference α): ``ε_x = s·ε_z``;
* WRM's Lagrangian coefficient γ (multiplies ``‖δ‖²``): ``γ_x = γ_z / s²``;
* λ of a penalty on a squared input gradient (GN ``½‖∇ log φ‖²``, SNR eq. 12's ``σ²``):
  ``λ_x = λ_z · s²``;
* unit-free strengths (SGR's λ, a noise-to-signal ratio after rescaling Σ to the data variance;
  SNR eq. 13's λ, which multiplies a logit-space quantity; SOAR's λ; mixing weights; SN β) are
  not converted.

``s`` per space (:func:`pixel_scale`): 1 for ``pixel``/``shifted``; for ``standardized`` and
``per_image`` the RMS of the data set's per-channel stds, ``s = (mean_c σ_c²)^½``. This is exact
when every channel has the same std (MNIST; any one-channel data). With different channel stds
(CIFAR10: 0.2470, 0.2435, 0.2616) the paper's ℓ2 ball is an ellipsoid ``‖δ/σ‖ ≤ ε`` in pixels and
its ℓ∞ ball a box with half-widths ``ε·σ_c``; robustjax's isotropic ball of radius ``ε·s`` lies
between the inscribed (``ε·min σ_c``) and circumscribed (``ε·max σ_c``) ones, and for an
isotropic direction it has the same mean squared length (``E‖σ ⊙ u‖² = s²‖u‖²``); likewise GN's
``Σ_c σ_c²‖∇_c‖²`` equals ``s²‖∇‖²`` when the gradient's energy is spread evenly over the
channels. ``per_image`` assumes every image's std equals the data set's (RMS) pixel std: a
first-order reading of a non-linear map (its Jacobian ``(I − 11ᵀ/D − zzᵀ/D)/s(x)`` also removes the
image's mean and its own direction, 2 of D dimensions), and one number for a per-image scale
``s(x)``. Measured on mnist-5k (``tests/test_units.py``): ``s(x)`` ranges over 0.15–0.44, mean
0.302, RMS 0.305 against the data set's 0.3083, so lengths are right on average to 1–2 %, while a
penalty on squared gradients, which the paper's network weighs per image by ``s(x)²``, comes out
``E[s̄²/s(x)²] − 1 ≈ 13 %`` stronger in pixels than in the paper's space (γ alike). CIFAR10/SVHN were
not measurable offline; their per-image std is smaller than the data set's by the spread of image
brightness.

A radius relative to the data's norm (Farnia §5: ε = 0.05·E‖X‖₂, ``relative_to_mean_norm``) is
taken in the paper's space: ``E‖z‖`` is ``E‖x‖`` (``pixel``), ``E‖x − 0.5‖`` (``shifted``),
``E‖(x − μ)/σ‖`` (``standardized``: measured on the train images) and exactly ``√D`` for
``per_image`` (every standardized image has norm ``√D``), and the product is then converted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from robustjax.data.dataset import dataset_stats

SPACES = ("pixel", "shifted", "standardized", "per_image")
ALIASES = {"whitened": "per_image"}
SHIFT = 0.5  # SGR footnote 3

#: how each kind of quantity scales with the pixel length ``s`` of one unit of the paper's space
POWERS = {"length": 1, "squared_length": 2, "inverse_squared_length": -2}
#: what each kind is, for tables
KIND_NAMES = {
    "length": "length (× s)",
    "squared_length": "λ of a squared input gradient (× s²)",
    "inverse_squared_length": "γ on ‖δ‖² (÷ s²)",
}


def check_space(space: Any, *, name: str = "units.space") -> str:
    """The canonical space name; ``ValueError`` naming ``name`` and the allowed values."""
    space = ALIASES.get(space, space)
    if space not in SPACES:
        allowed = ", ".join(SPACES + tuple(ALIASES))
        raise ValueError(f"{name} must be one of {allowed}; got {space!r}")
    return space


def method_quantities(method: str, kwargs: Mapping[str, Any]) -> dict[str, str]:
    """The ``method_kwargs`` of ``method`` that carry input units, and their kind (``POWERS``)."""
    if method == "adversarial":
        return {"eps": "length", "step_size": "length", "gamma": "inverse_squared_length"}
    if method == "snr":
        out = {"eps": "length"}
        if kwargs.get("form", "sos") == "jacobian":  # eq. 12: λ·σ², σ = ‖J‖ scales by 1/s
            out["lam"] = "squared_length"
        return out
    if method == "gn":
        return {"lam": "squared_length"}
    if method == "sgr":  # λ is a noise-to-signal ratio (Σ rescaled to the data variance)
        return {"eps": "length"}
    if method == "soar":
        return {"eps": "length", "alpha": "length"}
    return {}  # erm, global_snr: nothing depends on input units


@dataclasses.dataclass(frozen=True)
class Scale:
    """Pixel length ``s`` of one unit of ``space`` on ``dataset``; ``exact`` is False where the
    conversion rests on an assumption (different channel stds, per-image standardization)."""

    space: str
    dataset: str | None
    s: float
    exact: bool
    note: str


def pixel_scale(space: str, dataset: str | None = None) -> Scale:
    """The scale ``s`` (pixels per unit of ``space``) on ``dataset`` (see the module docstring)."""
    space = check_space(space)
    if space in ("pixel", "shifted"):
        return Scale(space, dataset, 1.0, True, "")
    if dataset is None:
        raise ValueError(f"dataset is needed to convert strengths from the {space!r} space")
    _, std = dataset_stats(dataset)
    s = math.sqrt(sum(v * v for v in std) / len(std))
    equal = max(std) - min(std) <= 1e-12
    if space == "standardized":
        note = ("" if equal else
                f"channel stds {tuple(std)} differ: RMS s = {s:.4g}, between min and max")
        return Scale(space, dataset, s, equal, note)
    note = f"assumes each image's std = the data set's RMS pixel std {s:.4g}"
    return Scale(space, dataset, s, False, note)


def convert(value: float, kind: str, scale: Scale | float) -> float:
    """``value`` of ``kind`` (``POWERS``) in the paper's space, in pixel units."""
    s = scale.s if isinstance(scale, Scale) else float(scale)
    if kind not in POWERS:
        raise ValueError(f"kind must be one of {sorted(POWERS)}; got {kind!r}")
    return float(value) * s ** POWERS[kind]


def paper_mean_norm(space: str, images: np.ndarray | None = None, *, dataset: str | None = None,
                    input_shape: tuple[int, ...] | None = None) -> float | None:
    """``E‖z‖₂`` of the images in the paper's space (``None`` if it needs images not given)."""
    space = check_space(space)
    if space == "per_image":
        shape = input_shape if input_shape is not None else (
            None if images is None else np.shape(images)[1:])
        return None if shape is None else math.sqrt(math.prod(shape))
    if images is None:
        return None
    total, n = 0.0, len(images)
    if space == "standardized":
        mean, std = (np.asarray(v, np.float64) for v in dataset_stats(dataset))
    for start in range(0, n, 1024):
        block = np.asarray(images[start:start + 1024], np.float64)
        if space == "shifted":
            block = block - SHIFT
        elif space == "standardized":
            block = (block - mean) / std
        total += float(np.sum(np.sqrt(np.sum(block.reshape(len(block), -1) ** 2, axis=1))))
    return total / n


@dataclasses.dataclass(frozen=True)
class Conversion:
    """One converted strength: as written in the config, in the paper's space, in pixels."""

    name: str
    kind: str
    written: Any
    relative: bool
    paper: float | None  # the paper-space value (written × E‖z‖ when relative), None if unknown
    pixel: float | None
    scale: Scale


def conversions(method: str, kwargs: Mapping[str, Any], *, space: str = "pixel",
                dataset: str | None = None, images: np.ndarray | None = None,
                input_shape: tuple[int, ...] | None = None) -> list[Conversion]:
    """Every unit-carrying strength of ``kwargs`` (a method's ``method_kwargs`` as written, with
    ``relative_to_mean_norm``), converted from ``space`` to pixels."""
    space = check_space(space)
    kwargs = dict(kwargs)
    relative = bool(kwargs.pop("relative_to_mean_norm", False))
    quantities = method_quantities(method, kwargs)
    if relative and not any(kwargs.get(k) is not None for k, kind in quantities.items()
                            if kind != "squared_length"):
        raise ValueError(
            f"method_kwargs.relative_to_mean_norm needs a radius or γ to scale; method {method!r} "
            f"has {sorted(quantities) or 'none'}")
    scale = pixel_scale(space, dataset)
    base = paper_mean_norm(space, images, dataset=dataset, input_shape=input_shape) if relative else 1.0
    out = []
    for name, kind in quantities.items():
        value = kwargs.get(name)
        if value is None:
            continue
        rel = relative and kind != "squared_length"
        paper = None if (rel and base is None) else float(value) * (base if rel else 1.0)
        pixel = None if paper is None else convert(paper, kind, scale)
        out.append(Conversion(name, kind, value, rel, paper, pixel, scale))
    return out


def resolve_method_kwargs(config, images: np.ndarray | None = None) -> tuple[dict, list[Conversion]]:
    """``config.method_kwargs`` with every strength in pixel units, and the conversions made.

    ``images`` are the training images (needed for a radius relative to ``E‖x‖`` in the
    ``pixel``, ``shifted`` and ``standardized`` spaces).
    """
    kwargs = dict(config.get("method_kwargs", {}) or {})
    units = config.get("units", None)
    space = check_space(units.get("space", "pixel") if units is not None else "pixel")
    input_shape = None if images is None else tuple(np.shape(images)[1:])
    rows = conversions(config.method, kwargs, space=space, dataset=config.dataset,
                       images=images, input_shape=input_shape)
    kwargs.pop("relative_to_mean_norm", None)
    for row in rows:
        if row.pixel is None:
            raise ValueError(f"method_kwargs.{row.name} is relative to E‖x‖₂: the training images "
                             "are needed to resolve it")
        kwargs[row.name] = row.pixel
    return kwargs, rows


def format_conversions(rows: list[Conversion], *, method: str | None = None) -> str:
    """A short table of :func:`conversions` (what ``robustjax train`` prints)."""
    if not rows:
        return f"strengths: {method or 'this method'} has none that depend on input units"
    sc = rows[0].scale
    head = f"strengths: the paper's {sc.space!r} space -> robustjax [0, 1] pixels"
    if sc.space not in ("pixel", "shifted"):
        head += f" (s = {sc.s:.4g} pixels per unit on {sc.dataset}"
        head += f"; {sc.note})" if sc.note else ")"
    lines = [head]
    for r in rows:
        written = f"{r.written:g}" if isinstance(r.written, (int, float)) else str(r.written)
        if r.relative:
            written += "·E‖z‖₂"
            paper = "?" if r.paper is None else f"{r.paper:.6g}"
            written += f" = {paper}"
        pixel = "(needs the training images)" if r.pixel is None else f"{r.pixel:.6g}"
        lines.append(f"  method_kwargs.{r.name:<10} {written:<26} -> {pixel:<12}  "
                     f"[{KIND_NAMES[r.kind]}]")
    return "\n".join(lines)


def space_transform(space: str, dataset: str | None = None) -> Callable:
    """``T(x)``: a batch ``x[B, ..., C]`` of [0, 1] pixels mapped to ``space`` (jax or numpy).

    Used to measure a ratio like DeepFool's ρ = ‖T(x + r) − T(x)‖/‖T(x)‖ in a paper's units.
    ``per_image`` divides by ``max(s(x), 1/√D)`` as TensorFlow's ``per_image_standardization``.
    """
    import jax.numpy as jnp

    space = check_space(space, name="space")
    if space == "pixel":
        def transform(x):
            return x
    elif space == "shifted":
        def transform(x):
            return x - SHIFT
    elif space == "standardized":
        mean, std = dataset_stats(dataset) if dataset is not None else (None, None)
        if mean is None:
            raise ValueError("dataset is needed for the 'standardized' space")

        def transform(x):
            return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)
    else:
        def transform(x):
            axes = tuple(range(1, x.ndim))
            d = math.prod(x.shape[1:])
            m = jnp.mean(x, axis=axes, keepdims=True)
            sd = jnp.sqrt(jnp.mean(jnp.square(x - m), axis=axes, keepdims=True))
            return (x - m) / jnp.maximum(sd, 1.0 / math.sqrt(d))
    transform.space = space
    return transform


def per_image_rms_std(images: np.ndarray) -> float:
    """RMS over images of each image's pixel std (what ``per_image`` assumes equals the data
    set's std; measure it on your data)."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    return float(np.sqrt(np.mean(np.var(flat, axis=1))))
