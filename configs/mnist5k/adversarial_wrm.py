"""WRM (Sinha et al.) adversarial training on mnist-5k, as in Farnia et al. §5 (CPU-sized).

γ = 0.04·E‖x‖₂ on MNIST (Farnia §5) with E‖x‖₂ measured on the training set
(``relative_to_mean_norm``), 15 ascent steps.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "adversarial"
    config.method_kwargs = {"attack": "wrm", "gamma": 0.04, "steps": 15, "relative_to_mean_norm": True}
    config.epochs = 10
    return config
