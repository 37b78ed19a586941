"""Data-dependent spectral norm regularization on mnist-5k (Roth et al. 2019, eq. 13; CPU-sized).

Table 1's setting (sum-of-squares form, ε = 1.75, λ = 1e-2) with 5 power iterations per step
instead of 10 to keep the CPU run short (``--set method_kwargs.iters=10`` for the paper's).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "snr"
    config.method_kwargs = {"form": "sos", "lam": 1e-2, "eps": 1.75, "iters": 5}
    config.epochs = 10
    return config
