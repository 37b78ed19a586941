"""FGSM adversarial training on mnist-5k (CPU-sized): ε = 32/255, mixed 50/50 with the clean loss
(Goodfellow et al.; SGR eq. 3 with λ = 0.5), predicted labels (no label leaking, SGR §4)."""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "adversarial"
    config.method_kwargs = {"attack": "fgsm", "eps": 32 / 255, "lam": 0.5, "labels": "predicted"}
    config.epochs = 10
    return config
