"""robustjax: adversarial robustness through regularization, as pure JAX functions.

The heart of the library is a set of pure functions of a model function
``logits_fn: x[B, ...] -> logits[B, K]`` (attacks, per-example power iteration on input
Jacobians, Hessian-vector products, regularizers). See README.md for the tour.
"""

__version__ = "0.1.0"
