"""SOAR regularization of the SOAR CNN on CIFAR-10 (Ma, Faghri & Farahmand 2020, eq. 11–12, §5 and
App. C; Table 1 row "SOAR", 81.73 %).

App. C: λ = 0.5 and α = 8/255 (§5 writes α = 0.03 ≈ 8/255), finite-difference Hessian-vector
product with h ~ U(0, α) (eq. 11), one Gaussian direction z (§4.2); ℓ∞ radius ε = 8/255 (§5, Table
1); evaluation point PGD1 (x' = x + η + one PGD step, §4.2 — the variant the paper trains with:
"PGD1 initialization is not the primary drive for the improved robustness", §5.1); "two types of
clipping: a gradient clipping of 30 on the ℓ2 norm of regularizer gradient, and a clipping of 10 on
the value of the ℓ2 norm part of the regularizer" (App. C) — ``reg_grad_clip = 30``, ``norm_clip =
10`` (not the optimizer's ``grad_clip_norm``, which would clip the total gradient).

Model: the four-layer CNN of App. C (``soar_cnn``: 3×3 convolutions with 32, 32, 64, 64 channels,
ReLU, max-pooling after layers 2 and 4; the classifier head is our choice, see the zoo docstring).
Data: CIFAR-10 with random crops and horizontal flips (§5). Units: ε and step sizes are given for
"pixel values ... normalized by 255 to the range [0, 1]" (§5), our units.

Fine-tuning (App. C "Regularization with SOAR"): continue from the pre-trained Standard model
(``init_from = "runs/soar2020/cifar10_erm"``, the workdir of ``configs/soar2020/cifar10_erm.py``;
``--set init_from=...`` for another) for 150 epochs, SGD with momentum 0.9, weight decay 2e-4,
initial learning rate 0.002 with "an update schedule of [90, 100]" (÷10, as for the standard
model), minibatch 128.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "soar_cnn"
    config.model_kwargs = {"features": (32, 32, 64, 64)}
    config.batch_size = 128
    config.augment = True
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 2e-4
    config.optimizer.schedule = "step"
    config.optimizer.decay_factor = 0.1
    config.evaluation.suite = "soar-table1"
    config.init_from = "runs/soar2020/cifar10_erm"
    config.epochs = 150
    config.optimizer.learning_rate = 0.002
    config.optimizer.decay_epochs = (90, 100)
    config.method = "soar"
    config.method_kwargs = {"lam": 0.5, "eps": 8 / 255, "alpha": 8 / 255, "init": "pgd1", "norm": "inf",
                            "norm_clip": 10.0, "reg_grad_clip": 30.0}
    return config
