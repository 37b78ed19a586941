"""Standard training of CNN7 on CIFAR-10 (Roth, Kilcher & Hofmann 2019, Table 1 "Standard
training", 93.5 % clean accuracy; App. 7.3).

Model: the 7-layer BatchNorm CNN of §5.1 / App. 7.3 (``cnn7``, base width 128; see the zoo
docstring for how the widths were inferred). Data: CIFAR-10 through tfds, 4-pixel zero pad + random
crop + horizontal flip with probability 1/2 (App. 7.3). The paper starts from a pre-trained model
whose training schedule it does not state; we use the schedule of the pre-trained network the zoo's
CNN7 follows (pytorch-playground ``cifar10``: Adam 1e-3, batch 200, 150 epochs, learning rate ÷10
at epochs 80 and 120, no weight decay) — an inference, not a number from the paper. The other Roth
configs fine-tune this run (``runs/roth2019/cifar10_erm``). Evaluation: ℓ2 PGA (suite
``roth-l2-pga``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "cnn7"
    config.model_kwargs = {"width": 128}
    config.augment = True
    config.evaluation.suite = "roth-l2-pga"
    config.method = "erm"
    config.epochs = 150
    config.batch_size = 200
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "step"
    config.optimizer.decay_epochs = (80, 120)
    config.optimizer.decay_factor = 0.1
    return config
