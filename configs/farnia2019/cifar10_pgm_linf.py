"""PGM (ℓ∞) adversarial training with spectral normalization, CIFAR10 AlexNet (Farnia, Zhang & Tse
2019, eq. 6; Table 1 row "CIFAR10 AlexNet PGM ℓ∞": "ℓ∞ adversarial training was performed with
magnitude 0.1").

ε = 0.1 (absolute), r = 15 iterations of α = 2ε/r (§5), no random start. Units
(``robustjax.units``): the paper's inputs are whitened per image (see ``cifar10_pgm.py``), so the
config states ε and α in the ``per_image`` space (``config.units.space``) and robustjax multiplies
them by s = 0.2508, the RMS of CIFAR10's per-channel pixel stds taken as the per-image std (an
assumption: not measurable offline): ε = 0.02508 ≈ 6.4/255 and α = 0.003344 in [0, 1] pixels.
(Per-channel stds make the whitened ℓ∞ box slightly anisotropic in pixels, half-widths 0.1·σ_c
between 0.0244 and 0.0262.)

Spectral normalization (eq. 9, Algorithm 1): W / max(1, σ(W)/β) on every conv/dense operator, β
cross-validated per row of Table 1 "from 4-6 values"; the sweep is β ∈ {1, 1.3, 1.6, 2, 4, ∞}:
``--set sn_beta=1.0`` … ``--set sn_beta=4.0``, and ``--set sn_beta=None`` for β = ∞ (no SN).
Default here: β = 1.6, the value the paper reports for AlexNet on CIFAR10 (App. A.1); the chosen β
of the other rows is not reported.

Training: 40 epochs (the runtime of Table 2 is "for 40 epochs"). The paper states no optimizer
settings; the authors' released code (dl_spectral_normalization, ``dl_utils.py``) uses SGD with
momentum 0.9 at learning rate 0.01 (its per-epoch decay 0.95^(epoch/390) is negligible) and batch
100 for the 3-channel data sets; no weight decay, dropout, BatchNorm (§5.3) or augmentation.
Adversarial loss only (eqs. 5–7: the adversarial risk; λ = 1) on the true labels, as in that code.
The code feeds 28×28 crops (Zhang et al.); we train on the full 32×32 images (no config key crops).
Networks: AlexNet of Zhang et al. 2017 (``alexnet_small``, Table 1 "AlexNet"; ``--set
model_kwargs.activation=elu`` is Table 1's ELU-AlexNet). The paper's Inception network and
TensorFlow ResNet are not in the zoo; its 1- and 2-layer 512-unit ELU MLPs are ``--set model=mlp``
with model_kwargs hidden_layers 1 or 2.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "alexnet_small"
    config.model_kwargs = {"activation": "relu"}
    config.epochs = 40
    config.batch_size = 100
    config.augment = False
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.01
    config.optimizer.momentum = 0.9
    config.evaluation.suite = "farnia-cifar10"
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 0.1, "steps": 15, "step_size": 2 * 0.1 / 15,
                            "random_start": False, "lam": 1.0, "labels": "true"}
    config.sn_beta = 1.6
    config.units.space = "per_image"  # whitened inputs (Zhang et al.)
    return config
