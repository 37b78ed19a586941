"""Experiments reproducing the papers' claims (small CPU defaults; full-scale configs in configs/)."""
