"""Every attack as one jax.jit program, inside a jitted step with traced params, on a Flax
model (the 4-device sharding check is in test_attacks_sharding.py)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks as A
from robustjax.core import norms as N


def mlp(p, x):
    return jnp.tanh(x.reshape(x.shape[0], -1) @ p[0]) @ p[1]


P = (jax.random.normal(jax.random.PRNGKey(0), (32, 16)) / 5.0,
     jax.random.normal(jax.random.PRNGKey(1), (16, 4)))
F = partial(mlp, P)
X = jax.random.uniform(jax.random.PRNGKey(2), (4, 4, 4, 2))
Y = jnp.array([0, 1, 2, 3])
KEY = jax.random.PRNGKey(3)

ATTACKS = {
    "fgm": lambda f, x, y: A.fgm(f, x, y, eps=0.3),
    "pgd": lambda f, x, y: A.pgd(f, x, y, eps=0.1, norm=jnp.inf, step_size=0.03, steps=3, key=KEY),
    "wrm": lambda f, x, y: A.wrm(f, x, y, gamma=1.0, steps=3),
    "deepfool": lambda f, x, y: A.deepfool(f, x, max_iter=5)[0],
    "lrc": lambda f, x, y: A.worst_of_n(
        f, x, y, sampler=partial(A.lrc_noise, eps=0.2, decay_length=2.0), n=3, key=KEY),
    "spatial": lambda f, x, y: A.spatial(f, x, y, max_angle=10.0, max_shift=0.1, num_angles=2,
                                         num_shifts=2),
}


def test_each_attack_is_one_jitted_program_and_matches_eager():
    for name, attack in ATTACKS.items():
        jitted = jax.jit(partial(attack, F))
        compiled = jitted.lower(X, Y).compile()  # one XLA executable for the whole attack
        np.testing.assert_allclose(compiled(X, Y), attack(F, X, Y), atol=1e-5, err_msg=name)


def test_attacks_inside_a_jitted_step_with_traced_params():
    @jax.jit
    def step(p, x, y):
        f = partial(mlp, p)
        x_adv = A.pgd(f, x, y, eps=0.5, norm=2, step_size=0.2, steps=3, key=KEY)
        return jnp.mean(optax_free_ce(f(x_adv), y)), x_adv

    def optax_free_ce(z, y):
        return jax.nn.logsumexp(z, 1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0]

    loss, x_adv = step(P, X, Y)
    np.testing.assert_allclose(x_adv, A.pgd(F, X, Y, eps=0.5, norm=2, step_size=0.2, steps=3, key=KEY),
                               atol=1e-5)
    # gradient w.r.t. params through the attack's output exists and is finite
    g = jax.grad(lambda p: step(p, X, Y)[0])(P)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(g))


def test_attacks_on_a_flax_model():
    import flax.linen as nn

    class TinyCNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(4, (3, 3), padding="VALID")(x))
            return nn.Dense(3)(x.reshape(x.shape[0], -1))

    model = TinyCNN()
    x = jax.random.uniform(jax.random.PRNGKey(4), (3, 6, 6, 1))
    variables = model.init(jax.random.PRNGKey(5), x)
    f = partial(model.apply, variables)
    for norm, eps in ((2, 0.5), (jnp.inf, 0.05)):
        x_adv = A.pgd(f, x, None, eps=eps, norm=norm, step_size=eps / 3, steps=4, key=KEY)
        assert np.all(np.asarray(N.per_example_norm(x_adv - x, norm=norm)) <= eps * (1 + 1e-6))
        ce = lambda z, y: jax.nn.logsumexp(z, 1) - jnp.take_along_axis(z, y[:, None], 1)[:, 0]  # noqa: E731
        y = jnp.argmax(f(x), 1)
        assert float(jnp.mean(ce(f(x_adv), y))) > float(jnp.mean(ce(f(x), y)))
    x_df, r = A.deepfool(f, x)
    assert np.all(np.asarray(jnp.argmax(f(x_df), 1) != jnp.argmax(f(x), 1)))
