"""ℓ2 PGM adversarial training on mnist-5k as in Farnia et al. §5 (CPU-sized): ε = 0.05·E‖x‖₂
(measured on the training set), 15 steps of α = 2ε/15, no random start."""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_l2", "eps": 0.05, "steps": 15, "step_size": 2 * 0.05 / 15,
                            "random_start": False, "relative_to_mean_norm": True}
    config.epochs = 10
    return config
