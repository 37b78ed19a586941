"""PGD-augmented adversarial training, CIFAR10 ε = 4/255 (Roth, Nowozin, Lucchi & Hofmann 2018,
SGR; Table 3 (right, CIFAR10 ε = 4: rows PGD and FGSM) and Table 4 (CIFAR10 ε = 4)).

ℓ∞ PGD with the paper's attack settings (App. 7.2, Table 2): ε = 4/255, ε_iter = ε/5, nb_iter = 10,
random start (CleverHans' Madry et al. PGD).

Adversarially augmented training (§4.1 (iii)): "training the classifier on a mixture of clean and
adversarial examples" — eq. 3 with λ; the mixture weight is not reported, we use the usual λ = 0.5
(Goodfellow et al.). Perturbations are crafted on the model's predicted labels "in order to avoid
label leaking during adversarially augmented training" (App. 7.2).

Training (§4.1 and App. 7.4): the CIFAR10 CNN of Table 5 (``sgr_cnn``, widths
64-64-128-128-256-256-10), Adam with learning rate 0.001, minibatch 128, 50 epochs; 4-pixel zero pad
+ random crop + horizontal flip with probability 1/2 "for both data sets". The paper shifts CIFAR10
by −0.5 so that padding adds mid-range pixels (footnote 3); we pad with 0.5 in [0, 1] pixels
(``augment_kwargs.fill``), the same mid-range value. Units: the paper gives ε "in units of 1/255"
(§4.1, Table 2), i.e. ε = 4/255 in our [0, 1] pixel units (the model standardizes inside, as the
paper's classifier does).

Units (``robustjax.units``): strengths are in [0, 1] pixels as written (ε "in units of 1/255");
DeepFool's ρ is also reported in the paper's per-image standardized space (``units.rho_space``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "cifar10"
    config.model = "sgr_cnn"
    config.model_kwargs = {"width": "cifar"}
    config.epochs = 50
    config.batch_size = 128
    config.augment = True
    config.augment_kwargs.fill = 0.5  # footnote 3: padding adds mid-range pixels
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.evaluation.suite = "sgr-table3-cifar10"
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 4 / 255, "steps": 10, "step_size": (4 / 255) / 5,
                            "random_start": True, "lam": 0.5, "labels": "predicted"}
    config.units.rho_space = "per_image"
    return config
