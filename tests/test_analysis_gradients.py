"""robustjax.analysis.gradients: norm gain and input-gradient norms on linear maps, by numpy."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis import input_gradient_norms, norm_gain

RNG = np.random.default_rng(2)
W = RNG.normal(size=(12, 4))
X = RNG.uniform(size=(11, 3, 4, 1)).astype(np.float32)
Y = RNG.integers(0, 4, size=11).astype(np.int32)


def linear(x):
    return x.reshape(x.shape[0], -1) @ jnp.asarray(W, jnp.float32)


def test_norm_gain_of_a_linear_map():
    r = norm_gain(linear, X, batch_size=4)
    flat = X.reshape(11, -1).astype(np.float64)
    np.testing.assert_allclose(r.gain, np.linalg.norm(flat @ W, axis=1) / np.linalg.norm(flat, axis=1), rtol=1e-5)
    np.testing.assert_allclose(r.input_norm, np.linalg.norm(flat, axis=1), rtol=1e-6)
    # the gain of a linear map lies between its extreme singular values
    s = np.linalg.svd(W, compute_uv=False)
    assert np.all(r.gain <= s[0] * (1 + 1e-5))
    zero = norm_gain(linear, np.zeros((2, 3, 4, 1), np.float32))
    assert np.all(np.isfinite(zero.gain)) and np.all(zero.gain == 0)
    x2 = X.copy()
    x2[5] *= 3.0
    keep = np.arange(11) != 5
    np.testing.assert_array_equal(norm_gain(linear, x2, batch_size=4).gain[keep], r.gain[keep])
    assert r.summary()["median"] == pytest.approx(np.median(r.gain))
    json.dumps(r.to_json())


def test_input_gradient_norms_of_softmax_regression():
    r = input_gradient_norms(linear, X, Y, batch_size=5)
    flat = X.reshape(11, -1).astype(np.float64)
    z = flat @ W
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(4)[Y]) @ W.T  # ∇ₓ CE = Wᵀ(softmax − e_y)
    np.testing.assert_allclose(r.grad_norm, np.linalg.norm(grad, axis=1), rtol=1e-4)
    np.testing.assert_allclose(r.loss, -np.log(p[np.arange(11), Y]), rtol=1e-5)
    assert r.summary()["min"] == pytest.approx(r.grad_norm.min())
    y2 = Y.copy()
    y2[3] = (y2[3] + 1) % 4
    keep = np.arange(11) != 3
    np.testing.assert_allclose(input_gradient_norms(linear, X, y2, batch_size=5).grad_norm[keep], r.grad_norm[keep],
                               rtol=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda: norm_gain(linear, X.astype(np.int32)), "x"),
    (lambda: norm_gain("f", X), "logits_fn"),
    (lambda: norm_gain(linear, X, batch_size=0), "batch_size"),
    (lambda: input_gradient_norms(linear, X, Y[:-1]), "y"),
    (lambda: input_gradient_norms(linear, X, Y + 4), "y"),
    (lambda: input_gradient_norms(linear, np.full_like(X, np.nan), Y), "x"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_models_of_one_architecture_share_the_compiled_programs():
    """Pytree-callable models (``Partial``) pass their weights as arguments: a second model of the
    same shapes reuses the programs of norm_gain, input_gradient_norms and the attacked logits."""
    from jax.tree_util import Partial

    from robustjax.analysis import generalization_gaps
    from robustjax.evaluation import AttackSpec

    import jax

    lowered = []  # every jit program lowered to MLIR (eval_shape traces but does not lower)

    def listener(event, duration, **_):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(event)

    def apply(w, x):
        return x.reshape(x.shape[0], -1) @ w

    spec = AttackSpec("PGD", "pgd", eps=(0.1,), norm=np.inf, params={"steps": 2, "step_size": 0.05})
    counts = []
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for w in (W, 2 * W):
            f = Partial(apply, jnp.asarray(w, jnp.float32))
            start = len(lowered)
            r = norm_gain(f, X, batch_size=4)
            g = input_gradient_norms(f, X, Y, batch_size=4)
            gaps = generalization_gaps(f, (X, Y), (X, Y), attack=spec, batch_size=4)
            counts.append(len(lowered) - start)
            flat = X.reshape(11, -1).astype(np.float64)
            np.testing.assert_allclose(r.output_norm, np.linalg.norm(flat @ w, axis=1), rtol=1e-5)
            assert np.all(np.isfinite(g.grad_norm)) and gaps.train_adv_loss.shape == (11,)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert counts[0] > 0 and counts[1] == 0
