"""robustjax: adversarial robustness through regularization, as pure JAX functions.

The heart of the library is a set of pure functions of a model function
``logits_fn: x[B, ...] -> logits[B, K]`` (attacks, per-example power iteration on input
Jacobians, Hessian-vector products, regularizers). See README.md for the tour.
"""

__version__ = "0.1.0"

from robustjax.core import host_memory as _host_memory  # noqa: E402

# glibc keeps freed host memory so XLA:CPU's per-step buffers are reused without page faults
# (issue 18: a CPU training step 87 -> 65 ms); opt out with ROBUSTJAX_HOST_MALLOC=0.
_host_memory.configure_from_env()
