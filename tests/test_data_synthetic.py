"""Synthetic data: Gaussian mixture geometry and the SOAR §2 over-parameterized regression."""

import itertools

import jax
import numpy as np
import pytest

from robustjax import data


def test_gaussian_mixture_geometry_and_balance():
    ds = data.gaussian_mixture(jax.random.key(0), n=3001, dim=20, num_classes=3,
                               separation=2.0, noise_std=0.05, clip=None)
    assert ds.images.shape == (3001, 20) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int32 and ds.num_classes == 3
    assert sorted(np.bincount(ds.labels).tolist()) == [1000, 1000, 1001]
    means = ds.info["means"]
    for i, j in itertools.combinations(range(3), 2):
        assert np.linalg.norm(means[i] - means[j]) == pytest.approx(2.0, rel=1e-5)
    # Empirical class means and spread match the specification.
    for k in range(3):
        xs = ds.images[ds.labels == k]
        np.testing.assert_allclose(xs.mean(0), means[k], atol=0.01)
        assert (xs - means[k]).std() == pytest.approx(0.05, rel=0.05)
    # Nearest-mean classification is essentially perfect at this separation.
    pred = np.argmin(((ds.images[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == ds.labels).mean() > 0.999
    # Labels are shuffled, not in blocks.
    assert not np.array_equal(ds.labels, np.sort(ds.labels))


def test_gaussian_mixture_determinism_and_splits():
    kw = dict(n=50, image_shape=(4, 4, 2), num_classes=4, separation=1.0)
    a = data.gaussian_mixture(jax.random.key(1), **kw)
    b = data.gaussian_mixture(jax.random.key(1), **kw)
    c = data.gaussian_mixture(jax.random.key(2), **kw)
    t = data.gaussian_mixture(jax.random.key(1), split="test", **kw)
    assert a.images.shape == (50, 4, 4, 2) and a.info["means"].shape == (4, 4, 4, 2)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    np.testing.assert_array_equal(a.info["means"], t.info["means"])  # same mixture
    assert not np.array_equal(a.images, t.images)  # independent sample
    # Default clip keeps image-like inputs in [0, 1].
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert data.gaussian_mixture(jax.random.PRNGKey(1), **kw).images.shape == (50, 4, 4, 2)


def test_gaussian_mixture_more_classes_than_dims():
    ds = data.gaussian_mixture(jax.random.key(0), n=40, dim=2, num_classes=5, separation=1.0,
                               clip=None)
    radii = np.linalg.norm(ds.info["means"] - 0.5, axis=1)
    np.testing.assert_allclose(radii, 1.0 / np.sqrt(2.0), rtol=1e-5)


@pytest.mark.parametrize("kw,match", [
    (dict(n=0, dim=3), "n"), (dict(n=5), "dim"), (dict(n=5, dim=3, image_shape=(1, 1, 3)), "dim"),
    (dict(n=5, dim=3, separation=-1.0), "separation"), (dict(n=5, dim=3, noise_std=-0.1), "noise_std"),
    (dict(n=5, dim=3, clip=(1.0, 0.0)), "clip"), (dict(n=5, dim=3, num_classes=0), "num_classes"),
])
def test_gaussian_mixture_bad_inputs(kw, match):
    with pytest.raises(ValueError, match=match):
        data.gaussian_mixture(jax.random.key(0), **kw)


def test_synthetic_presets_via_load():
    for name in data.SYNTHETIC:
        tr, te = data.load(name, "train"), data.load(name, "test")
        assert tr.images.dtype == np.float32 and tr.images.min() >= 0 and tr.images.max() <= 1
        np.testing.assert_array_equal(tr.info["means"], te.info["means"])
        mean, std = data.dataset_stats(name)
        channels = tr.images.shape[-1] if tr.images.ndim == 4 else 1
        assert len(mean) == len(std) == channels
        np.testing.assert_allclose(mean, [tr.images.mean()], rtol=1e-5)
    assert data.load("synthetic-mnist").input_shape == (28, 28, 1)


def test_overparameterized_regression_setting():
    prob = data.overparameterized_linear_regression(jax.random.key(0), n=8, d=200)
    x, y = prob.x, prob.y
    assert x.shape == (8, 200) and y.shape == (8,)
    assert np.all(x[:, 1:] == 0) and np.all(x[:, 0] != 0)  # confined to span(e_1)
    np.testing.assert_array_equal(prob.w_star, np.eye(200, dtype=np.float32)[0])
    np.testing.assert_allclose(y, x[:, 0], rtol=1e-6)
    # Analytic minimum-norm solution for data on span(e_1): w* itself.
    np.testing.assert_allclose(prob.w_min_norm, prob.w_star, atol=1e-6)


def test_min_norm_solution_against_lstsq_and_gradient_descent():
    prob = data.overparameterized_linear_regression(jax.random.key(3), n=6, d=50, subspace_dim=3,
                                                    noise_std=0.2)
    x = prob.x.astype(np.float64)
    y = prob.y.astype(np.float64)
    # Independent reference: LAPACK's min-norm least squares.
    w_ref = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(prob.w_min_norm, w_ref, atol=1e-5)
    assert np.all(prob.w_min_norm[3:] == 0)
    # Gradient descent on the empirical squared loss from a random init converges to the
    # documented limit: min-norm solution + the init's component outside the row space.
    w0 = np.random.default_rng(0).normal(size=50)
    w = w0.copy()
    lr = 1.0 / np.linalg.norm(x, 2) ** 2
    for _ in range(5000):
        w -= lr * x.T @ (x @ w - y)
    np.testing.assert_allclose(prob.gradient_descent_limit(w0), w, atol=1e-4)
    np.testing.assert_allclose(w[3:], w0[3:])  # unused coordinates never move (SOAR §2)


def test_soar_fgsm_loss_at_gradient_descent_limit():
    # SOAR §2: at w̄ (w̄_1 = w*_1, w̄_j = w_j(0)), Δx = ε sign(w(0)) on coordinates 2..d gives
    # pointwise loss ½ ε² (Σ_{j≥2} |w_j(0)|)², while the min-norm solution is unaffected.
    d, eps = 300, 0.1
    prob = data.overparameterized_linear_regression(jax.random.key(5), n=4, d=d)
    w0 = np.random.default_rng(1).normal(size=d)
    w_bar = prob.gradient_descent_limit(w0).astype(np.float64)
    dx = np.zeros(d)
    dx[1:] = eps * np.sign(w0[1:])
    x_adv = prob.x + dx
    loss = 0.5 * (x_adv @ w_bar - prob.x @ prob.w_star) ** 2
    np.testing.assert_allclose(loss, 0.5 * eps**2 * np.abs(w0[1:]).sum() ** 2, rtol=1e-4)
    loss_mn = 0.5 * (x_adv @ prob.w_min_norm - prob.x @ prob.w_star) ** 2
    assert np.all(loss_mn < 1e-10)


def test_regression_bad_inputs():
    with pytest.raises(ValueError, match="subspace_dim"):
        data.overparameterized_linear_regression(jax.random.key(0), n=3, d=2, subspace_dim=3)
    with pytest.raises(ValueError, match="d must"):
        data.overparameterized_linear_regression(jax.random.key(0), n=3, d=0)
