"""PGD-augmented adversarial training, MNIST ε = 32/255 (Roth, Nowozin, Lucchi & Hofmann 2018, SGR;
Table 3 (left, MNIST ε = 32: rows PGD and FGSM) and Table 4).

ℓ∞ PGD with the paper's attack settings (App. 7.2, Table 2): ε = 32/255, ε_iter = ε/5, nb_iter =
10, random start (CleverHans' Madry et al. PGD).

Adversarially augmented training (§4.1 (iii)): "training the classifier on a mixture of clean and
adversarial examples" — eq. 3 with λ; the mixture weight is not reported, we use the usual λ = 0.5
(Goodfellow et al.). Perturbations are crafted on the model's predicted labels "in order to avoid
label leaking during adversarially augmented training" (App. 7.2).

Training (§4.1 and App. 7.4): the MNIST CNN of Table 5 (``sgr_cnn``, widths
32-32-64-64-200-200-10), Adam with learning rate 0.001, minibatch 128, 50 epochs; 4-pixel zero pad
+ random crop + horizontal flip with probability 1/2 "for both data sets" — flipping digits is what
the paper says it did (§4.1: "for both data sets"), so it is kept here. Units: the paper gives ε
"in units of 1/255" (§4.1, Table 2), i.e. ε = 32/255 in our [0, 1] pixel units (the model
standardizes inside, as the paper's classifier does).

Units (``robustjax.units``): strengths are in [0, 1] pixels as written (ε "in units of 1/255");
DeepFool's ρ is also reported in the paper's per-image standardized space (``units.rho_space``).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.dataset = "mnist"
    config.model = "sgr_cnn"
    config.model_kwargs = {"width": "mnist"}
    config.epochs = 50
    config.batch_size = 128
    config.augment = True
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.evaluation.suite = "sgr-table3-mnist"
    config.method = "adversarial"
    config.method_kwargs = {"attack": "pgd_linf", "eps": 32 / 255, "steps": 10, "step_size": (32 / 255) / 5,
                            "random_start": True, "lam": 0.5, "labels": "predicted"}
    config.units.rho_space = "per_image"
    return config
