"""Global spectral norm regularization of CNN7 on CIFAR-10 à la Yoshida & Miyato (Roth, Kilcher &
Hofmann 2019, eq. 10; Table 1 "Global spectral norm reg.", 80.4 %).

Table 1: λ = 3·10⁻⁴, ITERS = 1 (one persistent power iteration per layer and step). σ(W) is the
norm of each layer's operator and does not depend on input units (the first convolution sits after
the model's standardization, as in the paper), so no unit conversion applies.

Training: App. 7.3 — "when training the derived regularized models, we started from a pre-trained
checkpoint and ran a hyper-parameter search over number of epochs, learning rate and regularization
constants"; the chosen epochs and learning rate are not reported. We start from the standard model
(``init_from = "runs/roth2019/cifar10_erm"``, the workdir of ``configs/roth2019/cifar10_erm.py``;
``--set init_from=...`` for another) and fine-tune for 20 epochs with Adam at 1e-4, batch 200 — our
choice, not the paper's. Augmentation: 4-pixel zero pad + random crop + horizontal flip (App. 7.3).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "cnn7"
    config.model_kwargs = {"width": 128}
    config.augment = True
    config.evaluation.suite = "roth-l2-pga"
    config.method = "global_snr"
    config.method_kwargs = {"lam": 3e-4, "iters": 1}
    config.init_from = "runs/roth2019/cifar10_erm"
    config.epochs = 20
    config.batch_size = 200
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-4
    return config
