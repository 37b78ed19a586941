"""Registry of the papers' networks: ``create(name, num_classes, **kw)`` and ``model_names()``.

=================  ================  ========================================================
name               class             paper (where the architecture is stated)
=================  ================  ========================================================
``mlp``            ``MLP``           Farnia et al. 2019 (003), §5.3: 1-2 hidden layers, 512 ELU
``sgr_cnn``        ``SGRCNN``        Roth et al. 2018, SGR (001), Table 5 (``width``)
``soar_cnn``       ``SOARCNN``       Ma et al., SOAR (004), App. C
``cnn7``           ``CNN7``          Roth, Kilcher & Hofmann 2019 (000), §5.1 / App. 7.3
``alexnet_small``  ``AlexNetSmall``  Zhang et al. 2017, App. A; used by Farnia et al. (003)
``elu_net``        ``ELUNet``        Sinha et al. 2018; used by Farnia et al. (003)
``resnet``         ``PreActResNet``  He et al. 2016; used by Wen et al. 2020 (002) (``depth``)
=================  ================  ========================================================

Every model: ``model.apply(variables, x, train=False) -> logits[B, K]``, first layer
``Standardize(mean, std)``, dense/conv layers built through the ``dense`` / ``conv``
attributes (spectral-normalization injection).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from robustjax.nn.convnets import CNN7, MLP, SGRCNN, SOARCNN, AlexNetSmall, ELUNet
from robustjax.nn.resnet import PreActResNet

__all__ = ["create", "model_names", "MODELS"]

MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "sgr_cnn": SGRCNN,
    "soar_cnn": SOARCNN,
    "cnn7": CNN7,
    "alexnet_small": AlexNetSmall,
    "elu_net": ELUNet,
    "resnet": PreActResNet,
}


def model_names() -> tuple[str, ...]:
    """Names accepted by :func:`create`, sorted."""
    return tuple(sorted(MODELS))


def create(name: str, num_classes: int, **kw) -> nn.Module:
    """Build the zoo model ``name`` with ``num_classes`` outputs (an unbound Linen module).

    Keyword arguments are the model's attributes, e.g. ``width="cifar"`` for ``sgr_cnn``,
    ``depth=56`` for ``resnet``, ``mean``/``std`` for the input standardization, and
    ``conv=...``/``dense=...`` layer factories (drop-in replacements for ``nn.Conv`` /
    ``nn.Dense``, e.g. spectrally normalized layers). Raises ``ValueError`` for an unknown
    name, ``num_classes < 2``, an unknown keyword, or a bad attribute value.

    Example::

        model = create("sgr_cnn", 10, width="mnist", mean=0.1307, std=0.3081)
        variables = model.init(key, x[:1])
        logits = model.apply(variables, x)                       # eval mode
        logits, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
    """
    if name not in MODELS:
        raise ValueError(f"name must be one of {', '.join(model_names())}; got {name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    cls = MODELS[name]
    allowed = {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}
    allowed.discard("num_classes")
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ValueError(
            f"unknown keyword(s) {unknown} for model {name!r}; allowed: {sorted(allowed)}"
        )
    return cls(num_classes=num_classes, **kw)
