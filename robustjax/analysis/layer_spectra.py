"""Every layer's operator norm and spectrum (Wen et al. 2020, Fig. 1a, App. B.2/B.4.2;
Farnia et al. 2019, App. A.1).

``collect_layers`` runs a Flax model once under ``nn.intercept_methods`` and records, for
every ``nn.Dense``/``nn.Conv`` (and their spectrally normalized versions), its path, the
per-example input shape and the convolution geometry (strides, padding, dilations, groups).
``network_spectral_report`` then measures each layer's σ as a true linear operator
(``conv_operator_norm``, Farnia Algorithm 1) and as a reshaped kernel (Miyato et al.),
their products over layers (the product of spectral norms in Wen et al.'s spectral
complexity), the operator's Frobenius norm (Farnia Theorems 1–4) and the standard deviation
of each layer's singular values (Wen Fig. 1a), exact where the operator is small enough and
otherwise from the circular spectrum of any stride, each row saying which (``sv_method``,
``sv_exact``; see ``robustjax.nn.conv_spectrum``).
``penalty_layers`` turns the record into the ``(kernel, geometry)`` list of
``robustjax.regularizers.global_spectral_penalty``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from robustjax.core.validation import check_positive_int
from robustjax.nn.spectral_norm import (
    SpectralNormConv,
    SpectralNormDense,
    conv_operator_norm,
    reshaped_kernel_norm,
)
from robustjax.nn.conv_spectrum import conv_singular_values
from robustjax.regularizers.global_spectral_norm import DENSE, ConvGeometry

__all__ = ["LayerInfo", "collect_layers", "penalty_layers", "network_spectral_report", "SpectralReport"]

_DENSE_TYPES = (nn.Dense, SpectralNormDense)
_CONV_TYPES = (nn.Conv, SpectralNormConv)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One Dense/Conv layer: ``path`` in the params tree, ``kind``, geometry, SN bound."""

    path: tuple
    kind: str  # "dense" | "conv"
    kernel_shape: tuple
    input_shape: tuple  # one example's input (spatial..., C) or (in,)
    geometry: Any  # DENSE (None) or ConvGeometry
    beta: float | None = None  # SN bound when the layer is spectrally normalized

    @property
    def name(self) -> str:
        return "/".join(self.path)


def _variables(variables):
    if isinstance(variables, dict) and "params" in variables:
        return dict(variables)
    return {"params": variables}


def _apply_kwargs(model, apply_kwargs):
    if apply_kwargs is not None:
        return dict(apply_kwargs)
    try:
        params = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return {}
    return {"train": False} if "train" in params else {}


def _example_input(input_shape):
    input_shape = tuple(int(a) for a in input_shape)
    if not input_shape or any(a < 1 for a in input_shape):
        raise ValueError(f"input_shape must be one example's shape, e.g. (28, 28, 1); got {input_shape}")
    return jnp.zeros((1,) + input_shape, jnp.float32)


def collect_layers(model: nn.Module, variables, input_shape: Sequence[int], *, apply_kwargs=None) -> list[LayerInfo]:
    """Record every Dense/Conv layer of ``model`` (in call order) by running it once.

    ``input_shape`` is one example's shape (no batch axis). ``apply_kwargs`` default:
    ``{"train": False}`` when the model's ``__call__`` takes ``train``.
    """
    variables = _variables(variables)
    x = _example_input(input_shape)
    records: list[LayerInfo] = []

    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if context.method_name == "__call__" and isinstance(m, _DENSE_TYPES + _CONV_TYPES):
            out = next_fun(*args, **kwargs)
            kernel_shape = tuple(m.variables["params"]["kernel"].shape)
            inputs = args[0] if args else kwargs["inputs"]
            beta = getattr(m, "beta", None)
            if isinstance(m, _DENSE_TYPES):
                records.append(LayerInfo(tuple(m.path), "dense", kernel_shape, (kernel_shape[0],), DENSE, beta))
            else:
                n = len(kernel_shape) - 2
                shape = tuple(inputs.shape[-(n + 1):])
                geometry = ConvGeometry(
                    shape, strides=_norm_tuple(m.strides, n), padding=_norm_padding(m.padding),
                    dilation=_norm_tuple(m.kernel_dilation, n), input_dilation=_norm_tuple(m.input_dilation, n),
                    feature_group_count=m.feature_group_count,
                )
                records.append(LayerInfo(tuple(m.path), "conv", kernel_shape, shape, geometry, beta))
            return out
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda v, z: model.apply(v, z, **_apply_kwargs(model, apply_kwargs)), variables, x)
    return records


def _norm_tuple(value, n):
    if value is None:
        return (1,) * n
    return (int(value),) * n if isinstance(value, int) else tuple(int(a) for a in value)


def _norm_padding(padding):
    if isinstance(padding, str) or isinstance(padding, int):
        return padding
    return tuple(p if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding)


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def penalty_layers(params, layers: Sequence[LayerInfo]) -> list:
    """``[(kernel, geometry), ...]`` for ``global_spectral_penalty`` from a params tree.

    Call inside the differentiated loss, so the kernels are the traced parameters.
    """
    params = params["params"] if isinstance(params, dict) and "params" in params else params
    return [(_get(params, info.path)["kernel"], info.geometry) for info in layers]


def _bounded_kernels(model, variables, x, kwargs) -> dict:
    """Kernels actually used by spectrally normalized layers (``bounded_kernel`` sown)."""
    _, state = model.apply(variables, x, mutable=["intermediates"], **kwargs)
    out = {}
    for path, value in jax.tree_util.tree_flatten_with_path(state.get("intermediates", {}))[0]:
        keys = tuple(p.key for p in path if hasattr(p, "key"))
        if len(keys) >= 2 and keys[-1] == "bounded_kernel":
            out[keys[:-1]] = value
    return out


@dataclasses.dataclass
class SpectralReport:
    """Rows (one dict per layer) and the products of σ over layers; ``str()`` is a table."""

    rows: list
    product_operator: float
    product_reshape: float

    @property
    def spectral_complexity(self) -> float:
        """Product of the layers' operator norms (the Lipschitz factor of Wen et al.'s
        spectral complexity, App. B.4.2)."""
        return self.product_operator

    @property
    def table(self) -> str:
        head = f"{'layer':<24}{'kind':<6}{'kernel':<18}{'input':<14}{'stride':<8}{'padding':<12}" \
               f"{'sigma_op':>10}{'sigma_resh':>11}{'sv_std':>9}  {'sv_method':<20}{'beta':>7}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            std = "" if r["sv_std"] is None else f"{r['sv_std']:.4f}"
            beta = "" if r["beta"] is None else f"{r['beta']:.3g}"
            lines.append(
                f"{r['name'][:23]:<24}{r['kind']:<6}{str(r['kernel_shape']):<18}{str(r['input_shape']):<14}"
                f"{str(r['strides']):<8}{str(r['padding'])[:11]:<12}{r['sigma_operator']:>10.4f}"
                f"{r['sigma_reshape']:>11.4f}{std:>9}  {_method_label(r):<20}{beta:>7}"
            )
        lines.append(f"product of operator norms: {self.product_operator:.6g}   "
                     f"product of reshaped-kernel norms: {self.product_reshape:.6g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table

    @property
    def sv_std(self) -> list:
        """Per-layer standard deviation of singular values (Wen et al. Fig. 1a), call order."""
        return [r["sv_std"] for r in self.rows]

    def summary(self) -> dict:
        """JSON-safe aggregates: products of σ, mean ``sv_std`` and the layers' methods."""
        stds = [s for s in self.sv_std if s is not None]
        return _jsonable({
            "num_layers": len(self.rows),
            "product_operator": self.product_operator,
            "product_reshape": self.product_reshape,
            "mean_sv_std": float(np.mean(stds)) if stds else None,
            "sv_methods": [_method_label(r) for r in self.rows],
        })

    def to_json(self) -> dict:
        """JSON-safe dict: every row, the products and the summary (non-finite → ``None``)."""
        return _jsonable({"analysis": "SpectralReport", "rows": self.rows,
                          "product_operator": self.product_operator,
                          "product_reshape": self.product_reshape, "summary": self.summary()})


def _method_label(row) -> str:
    method = row.get("sv_method") or "-"
    return method if row.get("sv_exact", True) or method == "unavailable" else method + " (approx)"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return str(value)


def network_spectral_report(
    model: nn.Module,
    variables,
    input_shape: Sequence[int],
    *,
    iters: int = 200,
    apply_kwargs=None,
    key: jax.Array | None = None,
    sv_max_dim: int = 2048,
) -> SpectralReport:
    """Every Dense/Conv layer's σ (operator and reshaped kernel), and their products.

    For spectrally normalized layers the kernel measured is the one the layer computes
    with, ``W / max(1, σ̂/β)`` (read from the frozen ``spectral`` collection).

    Every row (a dict) holds: ``name``, ``kind``, ``kernel_shape``, ``input_shape``,
    ``strides``, ``padding``, ``sigma_operator`` (σ_max of the layer's linear operator),
    ``sigma_reshape`` (of the reshaped kernel, Miyato et al.), ``sv_std`` (standard deviation of
    all the operator's singular values, Wen et al. Fig. 1a), ``sv_method`` (how they were
    obtained, ``robustjax.nn.SV_METHODS``), ``sv_exact``, ``frobenius`` (the operator's
    Frobenius norm, Farnia et al. Theorems 1–4), ``beta``, ``spectrally_normalized``.

    Singular values (``robustjax.nn.conv_singular_values``): ``"exact-matrix"`` for dense
    layers and for convolutions whose operator has ``min(D_in, D_out) ≤ sv_max_dim`` (Gram
    matrix in float64, any stride/padding; then σ_max is exact too); otherwise the circular
    spectrum, ``"fft-circular"`` (stride 1, Sedghi et al.) or ``"polyphase-circular"`` (strides
    dividing the input), exact only for ``CIRCULAR`` padding (``sv_exact``); ``"unavailable"``
    (``sv_std`` None) for input-dilated convolutions or strides not dividing the input. In the
    circular cases σ_max comes from ``iters`` power iterations on the true operator (Farnia
    Algorithm 1).
    """
    iters = check_positive_int(iters, name="iters")
    sv_max_dim = check_positive_int(sv_max_dim, name="sv_max_dim")
    variables = _variables(variables)
    kwargs = _apply_kwargs(model, apply_kwargs)
    layers = collect_layers(model, variables, input_shape, apply_kwargs=kwargs)
    bounded = _bounded_kernels(model, variables, _example_input(input_shape), kwargs)
    rows = []
    for info in layers:
        kernel = bounded.get(info.path, _get(variables["params"], info.path)["kernel"])
        kernel = jnp.asarray(kernel, jnp.float32)
        if info.kind == "dense":
            k64 = np.asarray(kernel, np.float64)
            s_all = np.linalg.svd(k64, compute_uv=False)
            sigma_op = float(s_all[0])
            strides, padding, std = None, None, float(np.std(s_all))
            method, exact, frob = "exact-matrix", True, float(np.linalg.norm(k64))
        else:
            g = info.geometry
            geom = dict(strides=g.strides, padding=g.padding, dilation=g.dilation,
                        input_dilation=g.input_dilation, feature_group_count=g.feature_group_count)
            spectrum = conv_singular_values(kernel, g.input_shape, max_dim=sv_max_dim, **geom)
            if spectrum.method == "exact-matrix":
                sigma_op = float(spectrum.values[0])
            else:
                sigma_op = float(conv_operator_norm(kernel, g.input_shape, iters=iters, key=key, **geom))
            strides, padding, std = g.strides, g.padding, spectrum.std
            method, exact, frob = spectrum.method, spectrum.exact, spectrum.frobenius
        rows.append(dict(
            name=info.name, kind=info.kind, kernel_shape=info.kernel_shape, input_shape=info.input_shape,
            strides=strides, padding=padding, sigma_operator=sigma_op,
            sigma_reshape=float(reshaped_kernel_norm(kernel)), sv_std=std, sv_method=method,
            sv_exact=exact, frobenius=frob, beta=info.beta, spectrally_normalized=info.path in bounded,
        ))
    prod_op = float(np.prod([r["sigma_operator"] for r in rows])) if rows else 1.0
    prod_re = float(np.prod([r["sigma_reshape"] for r in rows])) if rows else 1.0
    return SpectralReport(rows, prod_op, prod_re)
