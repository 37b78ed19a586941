"""Norms and projections, losses, power iteration, Jacobian and HVP operators (JAX and chex only)."""

from robustjax.core import validation  # noqa: F401

# --- norms & losses (attacks issue) ---

# --- power iteration, Jacobians, HVPs (spectral issue) ---
