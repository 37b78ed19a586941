"""ERM with every Dense/Conv operator spectrally normalized (Farnia et al. 2019, eq. 9).

W / max(1, σ(W)/β) with σ the norm of the true convolution operator (Algorithm 1), β = 2
(Farnia sweep {1, 1.3, 1.6, 2, 4, ∞}), one power iteration per step, gradients through σ.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.sn_beta = 2.0
    config.epochs = 15
    return config
