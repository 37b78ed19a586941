"""Gradient-norm regularization on mnist-5k (SGR with Σ = I; SGR Table 3 MNIST: GN λ = 5.0)."""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "gn"
    config.method_kwargs = {"lam": 5.0}
    config.epochs = 10
    return config
