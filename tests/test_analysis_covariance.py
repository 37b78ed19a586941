"""robustjax.analysis.covariance against numpy covariances and a brute-force loop over pixel pairs
(SGR 2018, eq. 15–16, Fig. 1–2, footnote 5)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import CovarianceResult, decay_length, perturbation_covariance
from robustjax.analysis.covariance import displacement_pair_counts


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(7, 4, 3, 2))
    # short-range correlated: neighbours and channels share noise, plus a non-zero mean
    xi = base + 0.6 * np.roll(base, 1, axis=1) + 0.3 * base[..., ::-1] + 0.5
    return xi


def _brute_force_function(xi, centered, max_distance):
    n, h, w, c = xi.shape
    flat = xi.reshape(n, -1)
    if centered:
        flat = flat - flat.mean(axis=0)
    cov = flat.T @ flat / n
    total = np.zeros((c, c, max_distance + 1))
    pairs = np.zeros(max_distance + 1)
    for p in range(h * w):
        for q in range(h * w):
            r = int(np.rint(math.hypot(p // w - q // w, p % w - q % w)))
            if r > max_distance:
                continue
            pairs[r] += 1
            for a in range(c):
                for b in range(c):
                    total[a, b, r] += cov[p * c + a, q * c + b]
    return cov, total / pairs, pairs


@pytest.mark.parametrize("centered", [True, False])
def test_matrix_and_function_match_brute_force(images, centered):
    with jax.enable_x64(True):
        r = perturbation_covariance(jnp.asarray(images), centered=centered)
    assert isinstance(r, CovarianceResult) and r.count == 7 and r.x_shape == (4, 3, 2)
    cov, function, pairs = _brute_force_function(images, centered, max_distance=4)  # round(hypot(3, 2)) = 4
    np.testing.assert_allclose(r.matrix, cov, rtol=1e-10, atol=1e-12)
    if centered:
        np.testing.assert_allclose(r.matrix, np.cov(images.reshape(7, -1), rowvar=False, bias=True), rtol=1e-10)
    np.testing.assert_allclose(r.function, function, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(r.pair_counts, pairs)
    np.testing.assert_array_equal(r.distances, np.arange(5))
    np.testing.assert_allclose(r.mean, images.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(r.decay_length, decay_length(np.stack([function[0, 0], function[1, 1]])))
    assert set(r.inter_channel) == {(0, 1)}


def test_truncated_function_grayscale_and_vectors(images):
    gray = images[..., 0]
    with jax.enable_x64(True):
        r = perturbation_covariance(jnp.asarray(gray), max_distance=2, matrix=False)
        v = perturbation_covariance(jnp.asarray(gray.reshape(7, -1)))
    _, function, _ = _brute_force_function(gray[..., None], True, max_distance=2)
    assert r.matrix is None and r.function.shape == (1, 1, 3) and r.x_shape == (4, 3)
    np.testing.assert_allclose(r.function, function, rtol=1e-9, atol=1e-12)
    assert v.function is None and v.decay_length is None and v.matrix.shape == (12, 12)
    assert r.inter_channel == {}


def test_pooled_over_examples_order_invariant(images):
    # examples are pooled (not per-example), so the estimate must not depend on their order
    with jax.enable_x64(True):
        r = perturbation_covariance(jnp.asarray(images))
        p = perturbation_covariance(jnp.asarray(images[::-1]))
    np.testing.assert_allclose(p.function, r.function, rtol=1e-12)
    np.testing.assert_allclose(p.matrix, r.matrix, rtol=1e-12)


def test_decay_length_definition():
    r = np.arange(12)
    zeta = 2.5
    f = 3.0 * np.exp(-r / zeta)
    # the first r with f/f0 < 1/e is 3; interpolate linearly between r = 2 and 3
    g2, g3 = math.exp(-2 / zeta), math.exp(-3 / zeta)
    expected = 2 + (g2 - math.exp(-1)) / (g2 - g3)
    np.testing.assert_allclose(decay_length(f), expected, rtol=1e-12)
    np.testing.assert_allclose(decay_length(np.exp(-r / 4.0)), 4.0, atol=1e-9)  # exact at an integer
    out = decay_length(np.stack([np.ones(5), np.zeros(5), -np.ones(5)]))
    assert out[0] == math.inf and out[1] == 0.0 and out[2] == 0.0
    assert decay_length(np.array([1.0, 0.1])).shape == ()


def test_pair_counts_sum_to_all_pairs():
    counts = displacement_pair_counts(5, 4, 10)
    # r = 1: the 4 axis neighbours and the 4 diagonal ones (round(√2) = 1)
    assert counts.sum() == (5 * 4) ** 2 and counts[0] == 20
    assert counts[1] == 2 * (4 * 4 + 5 * 3) + 4 * (4 * 3)


def test_summary_is_json_safe(images):
    import json

    r = perturbation_covariance(jnp.asarray(images, jnp.float32))
    s = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert s["summary"]["normalized_intra_channel"][0] == pytest.approx(1.0)
    assert len(s["summary"]["decay_length"]) == 2


def test_bad_arguments(images):
    x = jnp.asarray(images, jnp.float32)
    with pytest.raises(ValueError, match="at least 2 examples"):
        perturbation_covariance(x[:1])
    with pytest.raises(ValueError, match=r"perturbations must be \[N, H, W, C\]"):
        perturbation_covariance(x[..., None])
    with pytest.raises(ValueError, match="perturbations must be a batch"):
        perturbation_covariance(x[0, 0, 0])
    with pytest.raises(ValueError, match="max_distance must be an integer"):
        perturbation_covariance(x, max_distance=-1)
    with pytest.raises(ValueError, match="max_distance applies to images"):
        perturbation_covariance(x.reshape(7, -1), max_distance=2)
    with pytest.raises(ValueError, match="centered must be True or False"):
        perturbation_covariance(x, centered="yes")
    with pytest.raises(ValueError, match="pass matrix=False"):
        perturbation_covariance(jnp.zeros((2, 16385)))
    with pytest.raises(ValueError, match="function must have a displacement axis"):
        decay_length(np.float64(1.0))
