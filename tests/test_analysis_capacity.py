"""robustjax.analysis.capacity against a hand computation of Farnia et al.'s Theorems 1–4."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import capacity_scores, network_spectral_report


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.elu(nn.Conv(2, (3, 3), strides=2, padding="SAME", name="conv")(x))
        x = nn.elu(nn.Dense(5, name="hidden")(x.reshape(x.shape[0], -1)))
        return nn.Dense(3, name="out")(x)


def explicit_conv(kernel, shape):
    d = int(np.prod(shape))
    basis = jnp.eye(d).reshape((d,) + shape)
    out = jax.lax.conv_general_dilated(basis, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return np.asarray(out, np.float64).reshape(d, -1).T


def hand_phi(mats, *, eps, kappa, alpha, r, lam):
    """Theorems 1–4 written out with plain products and sums (no logs)."""
    s = [np.linalg.norm(m, 2) for m in mats]
    f = [np.linalg.norm(m, "fro") for m in mats]
    prod = 1.0
    for v in s:
        prod *= v
    partial, run = 0.0, 1.0
    for v in s:
        run *= v
        partial += run
    lip = prod * partial
    ratio = sum(fi ** 2 / si ** 2 for fi, si in zip(f, s))
    q = 2 * alpha / kappa * lip
    geometric = (1 - q ** r) / (1 - q)
    return dict(
        erm=prod ** 2 * ratio,
        fgm=(prod * (1 + eps / kappa * lip)) ** 2 * ratio,
        pgm=(prod * (1 + alpha / kappa * geometric * lip)) ** 2 * ratio,
        wrm=(prod * (1 + lip / (lam - lip))) ** 2 * ratio if lip < lam else None,
    ), lip


def test_capacity_scores_of_a_tiny_net_match_the_theorems():
    model = TinyNet()
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 6, 6, 1)))
    p = variables["params"]
    report = network_spectral_report(model, variables, (6, 6, 1), iters=300)
    mats = [explicit_conv(p["conv"]["kernel"], (6, 6, 1)), np.asarray(p["hidden"]["kernel"], np.float64).T,
            np.asarray(p["out"]["kernel"], np.float64).T]
    kw = dict(eps=0.3, kappa=0.2, alpha=0.01, r=5)
    ref, lip = hand_phi(mats, lam=3.0 * 1e3, **kw)
    got = capacity_scores(report, eps=0.3, kappa=0.2, step_size=0.01, steps=5, lam=3.0 * 1e3)
    for k in ("erm", "fgm", "pgm", "wrm"):
        np.testing.assert_allclose(got.phi[k], ref[k], rtol=1e-4)
    np.testing.assert_allclose(got.lip, lip, rtol=1e-4)
    assert got.wrm_condition
    low = capacity_scores(report, lam=0.5 * lip)  # lip ≥ λ: Theorem 4 does not apply
    assert low.phi["wrm"] is None and low.wrm_condition is False and low.phi["fgm"] is None
    blob = json.loads(json.dumps(got.to_json()))
    assert blob["summary"]["phi"]["erm"] == pytest.approx(ref["erm"], rel=1e-4)


def test_capacity_scores_from_pairs_special_cases():
    pairs = [(2.0, 3.0), (0.5, 1.0), (1.5, 2.0)]
    got = capacity_scores(pairs, eps=0.1, kappa=0.4, step_size=0.1, steps=1)
    # r = 1: one PGM step of size α is FGM with ε = α
    assert got.phi["pgm"] == pytest.approx(capacity_scores(pairs, eps=0.1, kappa=0.4).phi["fgm"], rel=1e-12)
    prod, lip = 1.5, 1.5 * (2.0 + 1.0 + 1.5)
    ratio = 9 / 4 + 1 / 0.25 + 4 / 2.25
    assert got.phi["erm"] == pytest.approx(prod ** 2 * ratio, rel=1e-12)
    # q = (2α/κ)·lip = 1: the geometric factor is r
    alpha = 0.4 / (2 * lip)
    q1 = capacity_scores(pairs, kappa=0.4, step_size=alpha, steps=4)
    assert q1.phi["pgm"] == pytest.approx((prod * (1 + alpha / 0.4 * 4 * lip)) ** 2 * ratio, rel=1e-9)
    # many large layers: the log-space score stays finite where the product overflows
    deep = capacity_scores([(1e30, 2e30)] * 12, eps=1.0, kappa=1.0)
    assert deep.phi["erm"] == float("inf") and np.isfinite(deep.log10_phi["fgm"])
    zero = capacity_scores([(0.0, 0.0), (1.0, 1.0)])
    assert np.isfinite(zero.log10_phi["erm"]) and zero.phi["erm"] < 1e-100


@pytest.mark.parametrize("kwargs,match", [
    (dict(spectra=[]), "at least one layer"),
    (dict(spectra="abc"), "spectra"),
    (dict(spectra=[(2.0, 1.0)]), "Frobenius"),
    (dict(spectra=[(-1.0, 1.0)]), "non-negative"),
    (dict(spectra=[(1.0, 1.0)], eps=-0.1, kappa=1.0), "eps"),
    (dict(spectra=[(1.0, 1.0)], steps=0, step_size=0.1, kappa=1.0), "steps"),
    (dict(spectra=[(1.0, 1.0)], lam=0.0), "lam"),
])
def test_capacity_scores_bad_input(kwargs, match):
    spectra = kwargs.pop("spectra")
    with pytest.raises(ValueError, match=match):
        capacity_scores(spectra, **kwargs)
