"""Diagnostics of the papers: spectra, alignment, margins, layer singular values."""

# --- layer spectra (spectral issue) ---
from robustjax.analysis.layer_spectra import (  # noqa: E402,F401
    LayerInfo,
    SpectralReport,
    collect_layers,
    network_spectral_report,
    penalty_layers,
)
