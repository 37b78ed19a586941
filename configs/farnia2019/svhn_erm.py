"""ERM with spectral normalization, SVHN (Farnia, Zhang & Tse 2019, §5.3, Table 1 rows "SVHN
AlexNet ERM").

Spectral normalization (eq. 9, Algorithm 1): W / max(1, σ(W)/β) on every conv/dense operator, β
cross-validated per row of Table 1 "from 4-6 values"; the sweep is β ∈ {1, 1.3, 1.6, 2, 4, ∞}:
``--set sn_beta=1.0`` … ``--set sn_beta=4.0``, and ``--set sn_beta=None`` for β = ∞ (no SN).
Default here: β = ∞ (no SN): Table 1 marks this ERM row with * — "β = ∞ achieved the highest
validation accuracy".

Training: 40 epochs (the runtime of Table 2 is "for 40 epochs"). The paper states no optimizer
settings; the authors' released code (dl_spectral_normalization, ``dl_utils.py``) uses SGD with
momentum 0.9 at learning rate 0.01 (its per-epoch decay 0.95^(epoch/390) is negligible) and batch
100 for the 3-channel data sets; no weight decay, dropout, BatchNorm (§5.3) or augmentation.
Adversarial loss only (eqs. 5–7: the adversarial risk; λ = 1) on the true labels, as in that code.
The code feeds 28×28 crops (Zhang et al.); we train on the full 32×32 images (no config key crops).
Networks: the same AlexNet as for CIFAR10 (§5.3; ``alexnet_small``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "svhn_cropped"
    config.model = "alexnet_small"
    config.model_kwargs = {"activation": "relu"}
    config.epochs = 40
    config.batch_size = 100
    config.augment = False
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.01
    config.optimizer.momentum = 0.9
    config.evaluation.suite = "farnia-svhn"
    config.method = "erm"
    config.sn_beta = None
    return config
