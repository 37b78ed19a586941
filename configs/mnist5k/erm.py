"""ERM on the embedded mnist-5k (4,000 train / 1,000 test) with the SGR MNIST CNN.

CPU-sized: a few minutes on 2 cores. Model: SGR Table 5 (MNIST widths 32-32-64-64-200-200-10),
Adam 1e-3 and batch 128 as in SGR §4.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "mnist-5k"
    config.model = "sgr_cnn"
    config.model_kwargs.width = "mnist"
    config.method = "erm"
    config.epochs = 15
    config.batch_size = 128
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.evaluation.suite = "mnist-quick"
    return config
