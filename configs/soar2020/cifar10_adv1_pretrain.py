"""Adv1-pretrain: 1-step PGD adversarial training fine-tuned from the Standard model (Ma, Faghri &
Farahmand 2020, §5.1; Table 1 row "Adv1-pretrain", 84.23 %).

The attack of ``cifar10_adv1_scratch.py`` (ε = 8/255, one step of 2/255, random start). The paper
does not give this baseline's schedule; we use SOAR's fine-tuning schedule, the natural comparison
("Since the regularization is applied to pretrained models, we also include 1-step PGD adversarial
training from pretrained models").

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
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 8 / 255, "steps": 1, "step_size": 2 / 255,
                            "random_start": True, "lam": 1.0, "labels": "true"}
    return config
