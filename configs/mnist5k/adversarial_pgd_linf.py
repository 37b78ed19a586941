"""Madry-style ℓ∞ PGD adversarial training on mnist-5k (CPU-sized).

ε = 32/255 as in SGR Table 3 (MNIST), 10 steps of 2.5ε/10 with a uniform random start,
true labels, λ = 1 (only the adversarial loss, Madry et al.; SGR eq. 3).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 32 / 255, "steps": 10, "step_size": 2.5 * (32 / 255) / 10,
                            "lam": 1.0, "labels": "true"}
    config.epochs = 10
    return config
