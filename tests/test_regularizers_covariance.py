"""SGR covariance state (Roth et al. 2018, eq. 14–16, Algorithm 1) against brute-force numpy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.regularizers.perturbations import perturbations
from robustjax.regularizers.covariance import (
    CovarianceFunction,
    FullCovariance,
    as_covariance_state,
    covariance_apply,
    covariance_init,
    covariance_matrix,
    covariance_mean,
    covariance_scale,
    covariance_update,
    mean_feature_variance,
)


def brute_force_table(xi, max_distance):
    """Mean of ξ[p,c] ξ[q,c'] over all ordered pixel pairs at each rounded distance."""
    m, h, w, c = xi.shape
    sums = np.zeros((c, c, max_distance + 1))
    counts = np.zeros(max_distance + 1)
    for p in range(h * w):
        for q in range(h * w):
            pr, pc = divmod(p, w)
            qr, qc = divmod(q, w)
            r = int(round(math.hypot(pr - qr, pc - qc)))
            if r > max_distance:
                continue
            counts[r] += m
            sums[:, :, r] += np.einsum("nc,nd->cd", xi[:, pr, pc, :], xi[:, qr, qc, :])
    return sums / counts


def dense_from_table(table, h, w, max_distance):
    """Σ[(p,c),(q,c')] = table[c, c', round‖p−q‖] with an explicit loop (row-major (h, w, c))."""
    c = table.shape[0]
    d = h * w * c
    sigma = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            pr, rest = divmod(i, w * c)
            pc, ci = divmod(rest, c)
            qr, rest = divmod(j, w * c)
            qc, cj = divmod(rest, c)
            r = int(round(math.hypot(pr - qr, pc - qc)))
            if r <= max_distance:
                sigma[i, j] = table[ci, cj, r]
    return sigma


def test_full_ema_matches_manual_and_rescaling():
    rng = np.random.default_rng(0)
    xi1 = rng.normal(size=(8, 3, 2)).astype(np.float32)
    xi2 = rng.normal(size=(8, 3, 2)).astype(np.float32) * 2.0
    state = covariance_init("full", (3, 2))
    state = covariance_update(state, jnp.asarray(xi1))
    state = covariance_update(state, jnp.asarray(xi2), beta=0.1)
    m1 = xi1.reshape(8, -1).T @ xi1.reshape(8, -1) / 8
    m2 = xi2.reshape(8, -1).T @ xi2.reshape(8, -1) / 8
    ref = 0.9 * m1 + 0.1 * m2
    np.testing.assert_allclose(np.asarray(state.second_moment), ref, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(state.mean), 0.9 * xi1.mean(0) + 0.1 * xi2.mean(0), rtol=1e-5, atol=1e-7
    )
    # Rescaled so the mean diagonal equals the data variance c (Algorithm 1).
    scaled = covariance_init("full", (3, 2), data_variance=0.25)
    scaled = covariance_update(covariance_update(scaled, jnp.asarray(xi1)), jnp.asarray(xi2))
    dense = np.asarray(covariance_matrix(scaled))
    np.testing.assert_allclose(np.mean(np.diag(dense)), 0.25, rtol=1e-5)
    np.testing.assert_allclose(dense, ref * 0.25 / np.mean(np.diag(ref)), rtol=1e-5)
    g = rng.normal(size=(4, 3, 2)).astype(np.float32)
    out = np.asarray(covariance_apply(scaled, jnp.asarray(g)))
    np.testing.assert_allclose(out.reshape(4, -1), g.reshape(4, -1) @ dense, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(covariance_mean(scaled)),
        np.sqrt(0.25 / np.mean(np.diag(ref))) * (0.9 * xi1.mean(0) + 0.1 * xi2.mean(0)),
        rtol=1e-4, atol=1e-7,
    )


def test_diagonal_matches_full_diagonal():
    rng = np.random.default_rng(1)
    xi = jnp.asarray(rng.normal(size=(6, 5)).astype(np.float32))
    full = covariance_update(covariance_init("full", (5,), data_variance=2.0), xi)
    diag = covariance_update(covariance_init("diagonal", (5,), data_variance=2.0), xi)
    np.testing.assert_allclose(
        np.asarray(covariance_matrix(diag)), np.diag(np.diag(np.asarray(covariance_matrix(full)))),
        rtol=1e-5,
    )
    g = jnp.asarray(rng.normal(size=(3, 5)).astype(np.float32))
    np.testing.assert_allclose(
        np.asarray(covariance_apply(diag, g)),
        np.asarray(g) * np.diag(np.asarray(covariance_matrix(full))), rtol=1e-5,
    )


@pytest.mark.parametrize("max_distance", [None, 2])
def test_covariance_function_estimate_matches_brute_force(max_distance):
    rng = np.random.default_rng(2)
    xi = rng.normal(size=(3, 5, 4, 2))
    xi[..., 1] += 0.5 * xi[..., 0]  # some inter-channel correlation
    state = covariance_init("function", (5, 4, 2), max_distance=max_distance)
    state = covariance_update(state, jnp.asarray(xi, jnp.float32))
    r = state.max_distance
    assert r == (5 if max_distance is None else 2)  # round(hypot(4, 3)) = 5
    np.testing.assert_allclose(np.asarray(state.table), brute_force_table(xi, r), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("max_distance", [None, 2, 0])
@pytest.mark.parametrize("fft_min_taps", [1, 10**6])
def test_covariance_function_apply_equals_dense_sigma(max_distance, fft_min_taps, monkeypatch):
    """The convolution applying Σ equals the dense Σ built from the same function (5x5x2),
    both by FFT and by direct convolution."""
    import robustjax.regularizers.covariance_function as CF

    monkeypatch.setattr(CF, "FFT_MIN_TAPS", fft_min_taps)
    rng = np.random.default_rng(3)
    h, w, c = 5, 5, 2
    state = covariance_init("function", (h, w, c), max_distance=max_distance)
    r = state.max_distance
    table = rng.normal(size=(c, c, r + 1))
    table = 0.5 * (table + table.transpose(1, 0, 2))
    state = CovarianceFunction(
        jnp.asarray(table, jnp.float32), state.mean, jnp.ones((), jnp.int32), (h, w, c), r, None, False
    )
    dense = dense_from_table(table, h, w, r)
    g = rng.normal(size=(3, h, w, c))
    out = np.asarray(covariance_apply(state, jnp.asarray(g, jnp.float32)))
    np.testing.assert_allclose(out.reshape(3, -1), g.reshape(3, -1) @ dense, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(covariance_matrix(state)), dense, rtol=1e-6, atol=1e-6)
    # Rescaling: mean diagonal of the dense matrix = data variance.
    scaled = CovarianceFunction(state.table, state.mean, state.count, (h, w, c), r, 0.3, False)
    np.testing.assert_allclose(np.mean(np.diag(np.asarray(covariance_matrix(scaled)))), 0.3, rtol=1e-5)


def test_function_state_on_lrc_like_noise_recovers_the_generating_function():
    """Samples from a covariance-function Gaussian: the estimate approaches the function."""
    h, w, c = 6, 6, 2
    rmax = int(round(math.hypot(h - 1, w - 1)))
    f = np.exp(-np.arange(rmax + 1) / 2.0)
    table = np.stack([np.stack([f, 0.5 * f]), np.stack([0.5 * f, f])])
    sigma = dense_from_table(table, h, w, rmax)
    # Rounded-distance covariance functions need not be PSD; project to the PSD cone.
    evals, evecs = np.linalg.eigh(sigma)
    root = evecs * np.sqrt(np.clip(evals, 0, None))
    rng = np.random.default_rng(4)
    xi = (rng.normal(size=(4000, sigma.shape[0])) @ root.T).reshape(-1, h, w, c)
    state = covariance_update(covariance_init("function", (h, w, c)), jnp.asarray(xi, jnp.float32))
    psd = root @ root.T
    ref = np.zeros((c, c, rmax + 1))
    cnt = np.zeros(rmax + 1)
    for i in range(sigma.shape[0]):
        for j in range(sigma.shape[0]):
            pr, rest = divmod(i, w * c); pc, ci = divmod(rest, c)
            qr, rest = divmod(j, w * c); qc, cj = divmod(rest, c)
            rr = int(round(math.hypot(pr - qr, pc - qc)))
            ref[ci, cj, rr] += psd[i, j]
            if ci == 0 and cj == 0:
                cnt[rr] += 1
    ref /= cnt
    np.testing.assert_allclose(np.asarray(state.table), ref, atol=0.08)


def test_state_is_a_jittable_pytree_without_gradient():
    rng = np.random.default_rng(5)
    xi = jnp.asarray(rng.normal(size=(4, 5, 5, 2)).astype(np.float32))
    state = covariance_init("function", (5, 5, 2), data_variance=1.0, max_distance=3)
    new = jax.jit(covariance_update)(state, xi)
    eager = covariance_update(state, xi)
    np.testing.assert_allclose(np.asarray(new.table), np.asarray(eager.table), rtol=1e-6)
    assert new.max_distance == 3 and new.x_shape == (5, 5, 2)
    assert len(jax.tree.leaves(new)) == 3
    g = jnp.asarray(rng.normal(size=(2, 5, 5, 2)).astype(np.float32))
    for st in (new, covariance_update(covariance_init("full", (5, 5, 2)), xi),
               covariance_update(covariance_init("diagonal", (5, 5, 2), data_variance=2.0), xi)):
        grads = jax.jit(jax.grad(lambda s: jnp.sum(covariance_apply(s, g) ** 2), allow_int=True))(st)
        for leaf in jax.tree.leaves(grads):
            if jnp.issubdtype(leaf.dtype, jnp.floating):
                assert np.all(np.asarray(leaf) == 0.0)
        # ... while g does get a gradient.
        assert np.any(np.asarray(jax.jit(jax.grad(lambda g: jnp.sum(covariance_apply(st, g) ** 2)))(g)) != 0)


def test_examples_independent_in_apply():
    rng = np.random.default_rng(6)
    xi = jnp.asarray(rng.normal(size=(4, 5, 5, 2)).astype(np.float32))
    state = covariance_update(covariance_init("function", (5, 5, 2)), xi)
    g = jnp.asarray(rng.normal(size=(3, 5, 5, 2)).astype(np.float32))
    a = covariance_apply(state, g)
    b = covariance_apply(state, g.at[1].add(3.0))
    np.testing.assert_allclose(np.asarray(a)[[0, 2]], np.asarray(b)[[0, 2]], rtol=1e-6)


def test_mean_feature_variance():
    x = jnp.asarray(np.random.default_rng(7).normal(size=(50, 3, 2)).astype(np.float32))
    np.testing.assert_allclose(
        float(mean_feature_variance(x)), np.mean(np.var(np.asarray(x).reshape(50, -1), axis=0)),
        rtol=1e-5,
    )


def _linear_model(key, d=12, k=3):
    w = jax.random.normal(key, (d, k))
    return lambda x: x.reshape(x.shape[0], -1) @ w


def test_perturbation_sources():
    f = _linear_model(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 2, 3, 2))
    y = jnp.array([0, 1, 2, 0])
    g = jax.grad(lambda z: jnp.sum(-jax.nn.log_softmax(f(z))[jnp.arange(4), y]))(x)
    xi = perturbations(f, x, y, source="gradient")
    np.testing.assert_allclose(np.asarray(xi), np.asarray(g), rtol=1e-5, atol=1e-7)
    xi = perturbations(f, x, y, source="sign", eps=0.1)
    np.testing.assert_allclose(np.asarray(xi), 0.1 * np.sign(np.asarray(g)), atol=1e-7)
    xi = perturbations(f, x, y, source="fgsm", eps=0.1)
    ref = np.clip(np.asarray(x) + 0.1 * np.sign(np.asarray(g)), 0, 1) - np.asarray(x)
    np.testing.assert_allclose(np.asarray(xi), ref, atol=1e-6)
    xi = perturbations(f, x, y, source="fgm", eps=0.1, clip=None)
    gn = np.asarray(g).reshape(4, -1)
    ref = 0.1 * gn / np.linalg.norm(gn, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(xi).reshape(4, -1), ref, atol=1e-6)
    xi = perturbations(f, x, y, source="pgd", eps=0.1, key=jax.random.PRNGKey(2))
    assert float(jnp.max(jnp.abs(xi))) <= 0.1 + 1e-6
    assert float(jnp.max(jnp.abs(xi))) > 0.05
    # y=None: predicted labels (no label leaking).
    pred = jnp.argmax(f(x), axis=-1)
    np.testing.assert_allclose(
        np.asarray(perturbations(f, x, None, source="sign", eps=0.1)),
        np.asarray(perturbations(f, x, pred, source="sign", eps=0.1)),
    )


def test_bad_input_raises():
    with pytest.raises(ValueError, match="kind"):
        covariance_init("banded", (4,))
    with pytest.raises(ValueError, match="x_shape"):
        covariance_init("function", (4, 4))
    with pytest.raises(ValueError, match="data_variance"):
        covariance_init("full", (4,), data_variance=0.0)
    with pytest.raises(ValueError, match="max_distance"):
        covariance_init("function", (4, 4, 1), max_distance=-1)
    state = covariance_init("full", (4,))
    with pytest.raises(ValueError, match="xi"):
        covariance_update(state, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="beta"):
        covariance_update(state, jnp.ones((3, 4)), beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        covariance_update(state, jnp.ones((3, 4)), beta=1.5)
    with pytest.raises(ValueError, match="g"):
        covariance_apply(state, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="state"):
        covariance_update(jnp.eye(4), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="covariance"):
        as_covariance_state(jnp.eye(5), (4,))
    with pytest.raises(ValueError, match="covariance"):
        as_covariance_state(covariance_init("full", (2, 2)), (4,))
    f = _linear_model(jax.random.PRNGKey(0), d=4)
    x = jnp.ones((2, 4)) * 0.5
    with pytest.raises(ValueError, match="source"):
        perturbations(f, x, None, source="deepfool", eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        perturbations(f, x, None, source="fgsm", eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        perturbations(f, x, None, source="sign")
    with pytest.raises(ValueError, match="key"):
        perturbations(f, x, None, source="pgd", eps=0.1)
    assert float(covariance_scale(state)) == 1.0
    assert isinstance(as_covariance_state(jnp.eye(4), (4,)), FullCovariance)


def circulant_psd_reference(table, h, w, max_distance):
    """Independent reference for ``psd=True``: the dense block-circulant operator of the
    function's kernel on the (h+kh) x (w+kw) torus, eigen-clipped with numpy.linalg.eigh as one
    big matrix, then restricted to the image's pixels (row-major (h, w, c))."""
    c = table.shape[0]
    kh, kw = min(max_distance, h - 1), min(max_distance, w - 1)
    ph, pw = h + kh, w + kw
    n = ph * pw * c
    circ = np.zeros((n, n))
    for i in range(ph * pw):
        for j in range(ph * pw):
            pr, pc = divmod(i, pw)
            qr, qc = divmod(j, pw)
            # The displacement on the torus, folded into [-kh, kh] x [-kw, kw] when it exists.
            dr = (pr - qr) % ph
            dc = (pc - qc) % pw
            dr = dr - ph if dr > kh else dr
            dc = dc - pw if dc > kw else dc
            if abs(dr) > kh or abs(dc) > kw:
                continue
            r = int(round(math.hypot(dr, dc)))
            if r <= max_distance:
                circ[i * c:(i + 1) * c, j * c:(j + 1) * c] = table[:, :, r]
    evals, evecs = np.linalg.eigh(circ)
    clipped = (evecs * np.clip(evals, 0, None)) @ evecs.T
    idx = np.array([(r * pw + col) * c + k for r in range(h) for col in range(w) for k in range(c)])
    return clipped[np.ix_(idx, idx)], evals.min()


@pytest.mark.parametrize("max_distance,c", [(None, 1), (2, 2), (0, 2)])
def test_psd_projection_matches_dense_eigen_clipping_of_the_circulant(max_distance, c):
    """psd=True: covariance_apply/covariance_matrix equal the eigen-clipped dense circulant
    (built and clipped in numpy, a different construction from the per-frequency FFT), the
    result is PSD, and the rescaling uses its diagonal."""
    rng = np.random.default_rng(7)
    h, w = 5, 4
    state = covariance_init("function", (h, w, c), max_distance=max_distance)
    r = state.max_distance
    table = rng.normal(size=(c, c, r + 1))
    table = 0.5 * (table + table.transpose(1, 0, 2))
    table[range(c), range(c), 0] = 2.0 + np.abs(table[range(c), range(c), 0])
    state = CovarianceFunction(jnp.asarray(table, jnp.float32), state.mean, jnp.ones((), jnp.int32),
                               (h, w, c), r, None, True)
    ref, min_eig = circulant_psd_reference(table, h, w, r)
    if max_distance is None:
        assert min_eig < -1e-3  # the raw function is indefinite: the projection does something
    dense = np.asarray(covariance_matrix(state))
    np.testing.assert_allclose(dense, ref, rtol=1e-4, atol=1e-5)
    assert np.linalg.eigvalsh(dense).min() > -1e-5 * np.abs(dense).max()
    g = rng.normal(size=(3, h, w, c))
    out = np.asarray(covariance_apply(state, jnp.asarray(g, jnp.float32)))
    np.testing.assert_allclose(out.reshape(3, -1), g.reshape(3, -1) @ ref, rtol=1e-4, atol=1e-4)
    scaled = CovarianceFunction(state.table, state.mean, state.count, (h, w, c), r, 0.3, True)
    np.testing.assert_allclose(np.mean(np.diag(np.asarray(covariance_matrix(scaled)))), 0.3, rtol=1e-5)


def test_psd_projection_leaves_a_valid_covariance_function_unchanged():
    """A function that is already PSD on the torus (exp(-r) within radius 1, dominant centre)
    is applied exactly as the raw function."""
    h, w = 6, 5
    table = np.array([[[1.0, 0.2]]])
    raw = CovarianceFunction(jnp.asarray(table, jnp.float32), jnp.zeros((h, w, 1)), jnp.ones((), jnp.int32),
                             (h, w, 1), 1, None, False)
    psd = CovarianceFunction(raw.table, raw.mean, raw.count, (h, w, 1), 1, None, True)
    np.testing.assert_allclose(np.asarray(covariance_matrix(psd)), np.asarray(covariance_matrix(raw)), atol=1e-6)
