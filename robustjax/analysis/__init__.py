"""Diagnostics of the papers: spectra, alignment, margins, layer singular values."""
