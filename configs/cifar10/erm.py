"""ERM on CIFAR-10 with the SGR CIFAR CNN, paper-sized (for accelerators).

SGR §4 / Table 5 (CIFAR widths 64-64-128-128-256-256-10), Adam 1e-3, batch 128, 50 epochs,
4-pixel pad + random crop + horizontal flip augmentation. Needs the tfds ``cifar10`` data in
``data_dir`` (``tfds build cifar10`` or a copy of a prepared ``~/tensorflow_datasets``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "sgr_cnn"
    config.model_kwargs.width = "cifar"
    config.method = "erm"
    config.epochs = 50
    config.batch_size = 128
    config.augment = True
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.evaluation.suite = "sgr-table3-cifar10"
    return config
