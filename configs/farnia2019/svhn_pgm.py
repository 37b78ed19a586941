"""PGM (ℓ2) adversarial training with spectral normalization, SVHN (Farnia, Zhang & Tse 2019, eq.
6; §5; Table 1 rows "SVHN AlexNet PGM ℓ2").

ε = 0.05·E‖X‖₂, r = 15 iterations of α = 2ε/r (§5), no random start (eq. 6 starts at x).

Units (``robustjax.units``): ε and γ are relative to E‖X‖₂ of the paper's input (§5: "ε =
0.05·E_P[‖X‖₂] (this value was approximately 2.44 for CIFAR10)"). 2.44 ≈ 0.05·√(28·28·3): the inputs
were Zhang et al.'s 28×28 crops with per-image whitening, where every ‖x‖₂ = √D. The config
therefore states the paper's relative numbers in the ``per_image`` space (``config.units.space``,
``relative_to_mean_norm``): E‖z‖₂ = √D with our D = 32·32·3 (the same relative strength on full
images), then lengths × s and γ ÷ s², with s = 0.1987 the RMS of SVHN's per-channel pixel stds taken
as the per-image std (an assumption: not measurable offline). In [0, 1] pixels: ε = 0.5506, α =
2ε/15 = 0.0734. (Measured on pixels, 0.05·E‖x‖₂ would be about twice as large: the pixel norm
includes the mean intensity, whitening removes it.)

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
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_l2", "eps": 0.05, "steps": 15, "step_size": 2 * 0.05 / 15,
                            "random_start": False, "lam": 1.0, "labels": "true",
                            "relative_to_mean_norm": True}
    config.sn_beta = 1.6
    config.units.space = "per_image"  # whitened inputs (Zhang et al.)
    return config
