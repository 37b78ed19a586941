"""WRM (Sinha et al.) adversarial training with spectral normalization, MNIST (Farnia, Zhang & Tse
2019, eq. 7; §5; Table 1 rows "MNIST ELU-Net WRM").

Lagrangian coefficient γ = 0.04·E‖X‖₂ (MNIST, §5), 15 gradient-ascent steps (the paper gives none;
the authors' code uses k = 15, as for PGM), the attack's default step size.

Units (``robustjax.units``): ε and γ are relative to E‖X‖₂ (§5), and Sinha et al.'s MNIST inputs are
unwhitened [0, 1] pixels, our units: ``relative_to_mean_norm`` multiplies them by the mean ℓ2 norm
of the training images (``config.units.space = "pixel"``, the default).

Spectral normalization (eq. 9, Algorithm 1): W / max(1, σ(W)/β) on every conv/dense operator, β
cross-validated per row of Table 1 "from 4-6 values"; the sweep is β ∈ {1, 1.3, 1.6, 2, 4, ∞}:
``--set sn_beta=1.0`` … ``--set sn_beta=4.0``, and ``--set sn_beta=None`` for β = ∞ (no SN).
Default here: β = 1.6, the value the paper reports for AlexNet on CIFAR10 (App. A.1); the chosen β
of the other rows is not reported.

Training: 40 epochs (Table 2). The paper states no optimizer settings; the authors' released code
(dl_spectral_normalization, ``dl_utils.py``) uses Adam at 0.001 for MNIST and batch 100; no weight
decay, dropout, BatchNorm (§5.3) or augmentation. Adversarial loss only (eqs. 5–7; λ = 1) on the
true labels. Network: ELU-Net of Sinha et al. (``elu_net``; Table 1 "ELU-Net"); the 1- and
2-hidden-layer 512-unit ELU MLPs of §5.3: ``--set model=mlp`` with ``--set
model_kwargs={"hidden_layers": 1, "width": 512, "activation": "elu"}``.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "mnist"
    config.model = "elu_net"
    config.model_kwargs = {"filters": 64}
    config.epochs = 40
    config.batch_size = 100
    config.augment = False
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.evaluation.suite = "farnia-mnist"
    config.method = "adversarial"
    config.method_kwargs = {"attack": "wrm", "gamma": 0.04, "steps": 15, "lam": 1.0, "labels": "true",
                            "relative_to_mean_norm": True}
    config.sn_beta = 1.6
    return config
