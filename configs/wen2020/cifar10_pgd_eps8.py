"""ℓ∞ PGD adversarial training of a BatchNorm-free ResNet-56 on CIFAR-10 at AR strength 8 (Wen, Li
& Jia 2020, App. B.1; models and training App. D.2 / D.3; Table 3 column 8).

App. B.1: Madry et al.'s untargeted ℓ∞ PGD "starting from a random perturbation", 10 steps of size
2/255, ε ∈ {4/255, 8/255, 16/255} (strengths "rescaled to the range 0 - 255", i.e. already in [0,
1] pixel units: ε = 8/255); "NNs are trained with adversarial examples" — the adversarial loss only
(λ = 1), true labels.

Model (App. D.2 → D.3): pre-activation ResNet-56 without BatchNorm, Fixup initialization with the
scalar layers omitted (``resnet``, ``depth=56``, ``normalization="none"``); ``--set
model_kwargs.depth=110`` for ResNet-110 and ``--set dataset=cifar100`` for CIFAR-100 (Table 4).
Training (App. D.3): minibatch 256, 200 epochs, SGD with momentum 0.9, learning rate 0.05 divided
by 10 at epochs 100 and 150 (no weight decay is stated). Data (App. D.1): 4-pixel zero pad + random
32×32 crop + horizontal flip. Evaluation: ℓ∞ PGD, 10 steps of 2/255 (suite ``wen-linf``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "resnet"
    config.model_kwargs = {"depth": 56, "normalization": "none"}
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 8 / 255, "steps": 10, "step_size": 2 / 255,
                            "random_start": True, "lam": 1.0, "labels": "true"}
    config.epochs = 200
    config.batch_size = 256
    config.augment = True
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.05
    config.optimizer.momentum = 0.9
    config.optimizer.schedule = "step"
    config.optimizer.decay_epochs = (100, 150)
    config.optimizer.decay_factor = 0.1
    config.evaluation.suite = "wen-linf"
    return config
