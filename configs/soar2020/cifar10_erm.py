"""Standard training of the SOAR CNN on CIFAR-10 (Ma, Faghri & Farahmand 2020, §5 and App. C; Table
1 row "Standard", 86.33 %). The SOAR and Adv1-pretrain configs fine-tune this run
(``runs/soar2020/cifar10_erm``).

Model: the four-layer CNN of App. C (``soar_cnn``: 3×3 convolutions with 32, 32, 64, 64 channels,
ReLU, max-pooling after layers 2 and 4; the classifier head is our choice, see the zoo docstring).
Data: CIFAR-10 with random crops and horizontal flips (§5). Units: ε and step sizes are given for
"pixel values ... normalized by 255 to the range [0, 1]" (§5), our units.

Training (App. C "Standard/Adversarial training"): 200 epochs, SGD with momentum 0.9, weight decay
2e-4, initial learning rate 0.01 decayed by an order of magnitude at epochs 100 and 150, minibatch
128.
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
    config.epochs = 200
    config.optimizer.learning_rate = 0.01
    config.optimizer.decay_epochs = (100, 150)
    config.method = "erm"
    return config
