"""SOAR on mnist-5k (Ma et al. App. C settings scaled to MNIST; CPU-sized).

λ = 0.5, PGD1 evaluation point, finite-difference HVP with h ~ U(0, α), norm term clipped to
[0, 10], gradient of the regularizer clipped to norm 30. The paper fine-tunes a standard
model: ``--set init_from=runs/erm`` starts from an ERM run's checkpoint. ε = α = 0.1 here (the
paper's 8/255 is for CIFAR-10).
"""

from robustjax.configs import base_config


def get_config():
    config = base_config()
    config.method = "soar"
    config.method_kwargs = {"lam": 0.5, "eps": 0.1, "alpha": 0.1, "init": "pgd1", "norm_clip": 10.0,
                            "reg_grad_clip": 30.0}
    config.epochs = 10
    return config
