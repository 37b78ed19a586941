"""robustjax.analysis.inputs: radii/direction checks and the compiled-once runner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import local_linearity
from robustjax.analysis.inputs import check_radii, run_compiled, unit_directions
from robustjax.core import programs


def test_check_radii_and_unit_directions():
    np.testing.assert_array_equal(check_radii(0.5), [0.5])
    np.testing.assert_array_equal(check_radii([-1.0, 2.0], nonnegative=False), [-1.0, 2.0])
    with pytest.raises(ValueError, match="ts must be a non-empty 1-D"):
        check_radii([[0.1, 0.2]], name="ts")
    with pytest.raises(ValueError, match="radii must be a 1-D sequence of numbers"):
        check_radii(["a"])
    d = unit_directions(jnp.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(np.asarray(d), [[0.6, 0.8], [0.0, 0.0]])


def _apply(w, x):
    return jnp.tanh(x @ w)


def test_partial_models_reuse_the_compiled_program():
    x, d = jnp.ones((2, 3)), jnp.arange(6.0).reshape(2, 3)
    w1, w2 = jnp.eye(3), 2.0 * jnp.eye(3)
    r1 = local_linearity(jax.tree_util.Partial(_apply, w1), x, d, [0.0, 1.0])
    with programs.compile_stats() as stats:
        r2 = local_linearity(jax.tree_util.Partial(_apply, w2), x, d, [0.0, 1.0])
    assert stats.compiles == 0  # new weights: the same program
    u = np.asarray(d) / np.linalg.norm(np.asarray(d), axis=1, keepdims=True)
    for r, w in ((r1, 1.0), (r2, 2.0)):
        diff = np.tanh(w * (1.0 + u)) - np.tanh(w * np.ones((2, 3)))
        np.testing.assert_allclose(r.change[:, 1], np.linalg.norm(diff, axis=1), rtol=1e-5)


def test_run_compiled_inline_under_trace_and_unhashable_static():
    body = lambda a, *, scale: a * scale[0]  # noqa: E731
    assert float(jax.jit(lambda a: run_compiled(body, (a,), scale=[2.0]))(3.0)) == 6.0
    assert float(run_compiled(body, (jnp.asarray(3.0),), scale=[2.0])) == 6.0  # a list is unhashable
