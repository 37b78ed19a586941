"""``training.objectives.base.train_mode_logits`` (issue 18): spectral-normalization state is
advanced on one example and the batch then runs immutably; the reference is the plain
single train-mode apply with the ``spectral`` collection mutable."""

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.nn import create, spectral_normalized
from robustjax.training.objectives.base import BATCH_FREE_COLLECTIONS, train_mode_logits


def _close(a, b, tol):
    for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=tol, atol=tol)


def test_spectral_state_update_matches_one_mutable_apply():
    # float32: the two paths run the same operations
    model = spectral_normalized("sgr_cnn", 10, beta=0.5, init_iters=5)  # σ > β: bound active
    x = jax.random.uniform(jax.random.PRNGKey(1), (70, 16, 16, 1))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    params = variables.pop("params")
    state = dict(variables)
    assert set(state) == set(BATCH_FREE_COLLECTIONS)
    y = jax.random.randint(jax.random.PRNGKey(2), (70,), 0, 10)

    def reference(p):
        logits, upd = model.apply({"params": p, **state}, x, train=True, mutable=list(state))
        return logits, {**state, **upd}

    def loss(fn, p):
        logits, new_state = fn(p)
        ce = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0]
        return jnp.mean(ce), (logits, new_state)

    def ours(p):
        return train_mode_logits(model, p, state, x)
    (l1, (z1, s1)), g1 = jax.jit(jax.value_and_grad(lambda p: loss(ours, p), has_aux=True))(params)
    (l0, (z0, s0)), g0 = jax.jit(jax.value_and_grad(lambda p: loss(reference, p), has_aux=True))(params)
    _close((l1, z1, s1, g1), (l0, z0, s0, g0), 2e-5)
    # the state really advanced (one power iteration from the stored vectors)
    assert any(float(jnp.max(jnp.abs(a - b))) > 1e-6
               for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(state)))


def test_batchnorm_state_still_sees_the_whole_batch():
    model = create("resnet", 10, depth=8)
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 8, 8, 3))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    params = variables.pop("params")
    logits, new_state = jax.jit(lambda p, v: train_mode_logits(model, p, v, x))(params, dict(variables))
    ref, upd = jax.jit(lambda p, v: model.apply({"params": p, **v}, x, train=True,
                                                 mutable=["batch_stats"]))(params, variables)
    _close((logits, new_state), (ref, {**variables, **upd}), 0)
