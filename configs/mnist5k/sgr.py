"""Structured gradient regularization on mnist-5k (SGR Algorithm 1; Table 3's SGR_SIGN; CPU-sized).

Σ from gradient-sign perturbations ε·sign(∇ₓ CE) at ε = 32/255 on predicted labels (§4.1 (b)),
as a covariance function of rounded pixel displacement (eq. 16, applied as its nearest PSD
kernel), EMA β = 0.1, rescaled to the data variance (λ is a noise-to-signal ratio).

Two departures from the paper's MNIST row, both measured (5 epochs, PGD-ℓ∞ ε = 0.1, 20 steps,
``experiments/mnist5k_methods.py``; ERM 0.810):

* λ = 10 instead of Table 3's 1.0: this run sees 5 epochs of 4,000 digits, about 1/150 of the
  paper's 50 epochs of 60,000, and needs a stronger penalty for the effect to show
  (λ = 1: 0.825 against an ERM of 0.789 on an earlier build; λ = 10: 0.855, clean 0.970).
* the sign source instead of FGSM_SGR: on MNIST, FGSM perturbations are clipped to [0, 1] on the
  black background, so ξ ≥ 0 there and the raw second moments are dominated by one constant
  (DC) direction — top eigenvalue ≈ 200·c, the bulk ≈ 0.4·c — and after the mean-diagonal
  rescaling almost all of λ penalizes the gradient's pixel sum. FGSM_SGR reached 0.732 (λ = 0.5)
  and 0.792 (λ = 10), not above ERM. The paper's own Table 3 also ranks FGSM_SGR below
  SGR_SIGN under PGD (83.2 vs 89.5). ``configs/sgr2018/`` has every variant at the paper's λ.
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "sgr"
    config.method_kwargs = {"lam": 10.0, "kind": "function", "source": "sign", "eps": 32 / 255, "beta": 0.1}
    config.epochs = 10
    return config
