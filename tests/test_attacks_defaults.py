"""Every public attack, called with its default arguments, returns images inside [0, 1].

The inputs touch both ends of the range (pixels at exactly 0 and 1) and the model's gradient
points out of the range there, so an attack without a default clip would leave it.
"""

import inspect
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks as A

K = 3
W = jax.random.normal(jax.random.PRNGKey(0), (4 * 4 * 2, K))


def f(x):
    return jnp.tanh(x.reshape(x.shape[0], -1)) @ W * 5.0


# half the pixels at 0 or 1, the rest inside
X = jax.random.uniform(jax.random.PRNGKey(1), (4, 4, 4, 2))
X = jnp.where(X < 0.25, 0.0, jnp.where(X > 0.75, 1.0, X))
Y = jnp.array([0, 1, 2, 0])
KEY = jax.random.PRNGKey(2)

# The required (non-default) arguments only: strength, steps, key.
CALLS = {
    "fgm": lambda: A.fgm(f, X, Y, eps=0.5),
    "fgsm": lambda: A.fgsm(f, X, Y, eps=0.5),
    "pgd": lambda: A.pgd(f, X, Y, eps=0.5, norm=np.inf, step_size=0.2, steps=3, key=KEY),
    "pgd_l2": lambda: A.pgd_l2(f, X, Y, eps=3.0, step_size=1.0, steps=3, key=KEY),
    "pgd_linf": lambda: A.pgd_linf(f, X, Y, eps=0.5, step_size=0.2, steps=3, key=KEY),
    "wrm": lambda: A.wrm(f, X, Y, gamma=0.05, steps=3),
    "deepfool": lambda: A.deepfool(f, X, max_iter=5, overshoot=1.0)[0],
    "uniform_noise": lambda: A.uniform_noise(X, key=KEY, eps=0.5),
    "gaussian_noise": lambda: A.gaussian_noise(X, key=KEY, sigma=0.5),
    "lrc_noise": lambda: A.lrc_noise(X, key=KEY, eps=0.5, decay_length=2.0),
    "worst_of_n": lambda: A.worst_of_n(f, X, Y, sampler=partial(A.lrc_noise, eps=0.5, decay_length=2.0),
                                       n=2, key=KEY),
    "spatial": lambda: A.spatial(f, X, Y, max_angle=30.0, max_shift=0.2, num_angles=2, num_shifts=2),
}


def test_every_public_attack_is_covered():
    public = {name for name in A.__all__
              if callable(getattr(A, name)) and not inspect.isclass(getattr(A, name))}
    # not attacks: samplers/helpers returning noise fields, covariances, grids or scalars
    helpers = {"lrc_covariance", "lrc_sample", "spatial_grid", "rotate_translate",
               "deepfool_robustness"}
    assert public - helpers == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_default_output_in_unit_range(name):
    x_adv = np.asarray(CALLS[name]())
    assert x_adv.shape == X.shape
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, (name, x_adv.min(), x_adv.max())
    # the attack did move the images (the range check is not vacuous)
    assert np.max(np.abs(x_adv - np.asarray(X))) > 0.01, name


def test_clip_none_leaves_the_range():
    """The same calls with ``clip=None`` do leave [0, 1]: the defaults are what clips."""
    x_adv = np.asarray(A.fgsm(f, X, Y, eps=0.5, clip=None))
    assert x_adv.min() < 0.0 and x_adv.max() > 1.0
    x_df = np.asarray(A.deepfool(f, X, max_iter=5, overshoot=1.0, clip=None)[0])
    assert x_df.min() < 0.0 or x_df.max() > 1.0
    x_wrm = np.asarray(A.wrm(f, X, Y, gamma=0.05, steps=3, clip=None))
    assert x_wrm.min() < 0.0 or x_wrm.max() > 1.0
    x_n = np.asarray(A.gaussian_noise(X, key=KEY, sigma=0.5, clip=None))
    assert x_n.min() < 0.0 and x_n.max() > 1.0
