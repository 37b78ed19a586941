"""Flax Linen models of the papers and operator spectral normalization."""

# --- layers and model zoo (foundation issue) ---

# --- spectral normalization (spectral issue) ---
