"""Attacks as pure functions of ``logits_fn`` (one file per attack).

Every attack takes ``logits_fn: x[B, ...] -> logits[B, K]``, the batch ``x``, labels ``y`` (or
``None`` for the model's predicted labels), keyword-only hyper-parameters and, where random, an
explicit ``key``; it validates its arguments in Python and runs as one jit-compiled program.
"""

from robustjax.attacks.deepfool import DeepFoolRobustness, deepfool, deepfool_robustness
from robustjax.attacks.fgm import fgm, fgsm
from robustjax.attacks.noise import (
    gaussian_noise,
    lrc_covariance,
    lrc_noise,
    lrc_sample,
    uniform_noise,
    worst_of_n,
)
from robustjax.attacks.pgd import pgd, pgd_l2, pgd_linf
from robustjax.attacks.spatial import SPATIAL_STRENGTHS, rotate_translate, spatial, spatial_grid
from robustjax.attacks.wrm import wrm

__all__ = [
    "DeepFoolRobustness",
    "SPATIAL_STRENGTHS",
    "deepfool",
    "deepfool_robustness",
    "fgm",
    "fgsm",
    "gaussian_noise",
    "lrc_covariance",
    "lrc_noise",
    "lrc_sample",
    "pgd",
    "pgd_l2",
    "pgd_linf",
    "rotate_translate",
    "spatial",
    "spatial_grid",
    "uniform_noise",
    "worst_of_n",
    "wrm",
]
