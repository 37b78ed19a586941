"""Global spectral norm regularization on mnist-5k (Yoshida & Miyato; Roth et al. 2019 eq. 10,
Table 1: λ = 3e-4), one power iteration per layer and step."""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "global_snr"
    config.method_kwargs = {"lam": 3e-4, "iters": 1}
    config.epochs = 10
    return config
