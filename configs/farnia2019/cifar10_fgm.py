"""FGM (ℓ2) adversarial training with spectral normalization, CIFAR10 (Farnia, Zhang & Tse 2019,
eq. 5; §5; Table 1 rows "CIFAR10 AlexNet FGM ℓ2").

ε = 0.05·E‖X‖₂ (§5).

Units (``robustjax.units``): ε and γ are relative to E‖X‖₂ of the paper's input (§5: "ε =
0.05·E_P[‖X‖₂] (this value was approximately 2.44 for CIFAR10)"). 2.44 ≈ 0.05·√(28·28·3): the inputs
were Zhang et al.'s 28×28 crops with per-image whitening, where every ‖x‖₂ = √D. The config
therefore states the paper's relative numbers in the ``per_image`` space (``config.units.space``,
``relative_to_mean_norm``): E‖z‖₂ = √D with our D = 32·32·3 (the same relative strength on full
images), then lengths × s and γ ÷ s², with s = 0.2508 the RMS of CIFAR10's per-channel pixel stds
taken as the per-image std (an assumption: not measurable offline). In [0, 1] pixels: ε = 0.6951.
(Measured on pixels, 0.05·E‖x‖₂ would be about twice as large: the pixel norm includes the mean
intensity, whitening removes it.)

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
    config.method_kwargs = {"attack": "fgm", "eps": 0.05, "lam": 1.0, "labels": "true",
                            "relative_to_mean_norm": True}
    config.sn_beta = 1.6
    config.units.space = "per_image"  # whitened inputs (Zhang et al.)
    return config
