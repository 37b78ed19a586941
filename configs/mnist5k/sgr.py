"""Structured gradient regularization on mnist-5k (SGR Algorithm 1; Table 3: FGSM_SGR, λ = 0.5).

Covariance function of rounded pixel displacement (eq. 16) estimated from FGSM perturbations
at ε = 32/255 on predicted labels, EMA β = 0.1, rescaled to the data variance.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "sgr"
    config.method_kwargs = {"lam": 0.5, "kind": "function", "source": "fgsm", "eps": 32 / 255, "beta": 0.1}
    config.epochs = 10
    return config
