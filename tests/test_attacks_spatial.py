"""Spatial attacks: rotations/translations against exact pixel permutations, grid worst case."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import SPATIAL_STRENGTHS, rotate_translate, spatial, spatial_grid
from robustjax.core import losses as L

X = jax.random.uniform(jax.random.PRNGKey(0), (3, 6, 6, 2))


def test_identity_and_rot90():
    np.testing.assert_allclose(rotate_translate(X, angle=0.0, shift=(0.0, 0.0)), X, atol=1e-6)
    rot = rotate_translate(X, angle=90.0, shift=(0.0, 0.0))
    np.testing.assert_allclose(rot, np.rot90(np.asarray(X), k=1, axes=(1, 2)), atol=1e-5)
    rot180 = rotate_translate(X, angle=180.0, shift=(0.0, 0.0))
    np.testing.assert_allclose(rot180, np.asarray(X)[:, ::-1, ::-1], atol=1e-5)


def test_integer_translation_with_zero_fill():
    out = np.asarray(rotate_translate(X, angle=0.0, shift=(2 / 6, -1 / 6)))  # 2 px down, 1 px left
    ref = np.zeros_like(np.asarray(X))
    ref[:, 2:, :-1] = np.asarray(X)[:, :-2, 1:]
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_half_pixel_shift_is_bilinear_average():
    out = np.asarray(rotate_translate(X, angle=0.0, shift=(0.0, 0.5 / 6)))
    x = np.asarray(X)
    np.testing.assert_allclose(out[:, :, 1:], 0.5 * (x[:, :, 1:] + x[:, :, :-1]), atol=1e-6)


def test_per_example_parameters():
    out = rotate_translate(X, angle=jnp.array([0.0, 90.0, 180.0]), shift=jnp.zeros((3, 2)))
    np.testing.assert_allclose(out[0], X[0], atol=1e-6)
    np.testing.assert_allclose(out[1], np.rot90(np.asarray(X[1]), k=1, axes=(0, 1)), atol=1e-5)


def _model(x):
    w = jax.random.normal(jax.random.PRNGKey(1), (72, 3))
    return x.reshape(x.shape[0], -1) @ w


def test_grid_attack_is_worst_of_grid():
    y = jnp.argmax(_model(X), 1)
    out = spatial(_model, X, None, max_angle=30.0, max_shift=0.1, num_angles=3, num_shifts=3)
    grid = spatial_grid(30.0, 0.1, 3, 3)
    assert grid.shape == (27, 3)
    cands = np.stack([np.asarray(rotate_translate(X, angle=g[0], shift=g[1:])) for g in grid])
    scores = np.stack([np.asarray(-L.margin(_model(jnp.asarray(c)), y)) for c in cands])
    np.testing.assert_allclose(out, cands[scores.argmax(0), np.arange(3)], atol=1e-5)


def test_random_mode_and_strengths():
    assert SPATIAL_STRENGTHS["medium"] == {"max_angle": 30.0, "max_shift": 0.10}
    out = spatial(_model, X, None, mode="random", n=4, key=jax.random.PRNGKey(2),
                  **SPATIAL_STRENGTHS["weak"])
    assert out.shape == X.shape and not np.allclose(out, X)
    with pytest.raises(ValueError, match="key"):
        spatial(_model, X, None, mode="random", max_angle=10.0, max_shift=0.05)
    with pytest.raises(ValueError, match="mode"):
        spatial(_model, X, None, mode="best", max_angle=10.0, max_shift=0.05)
