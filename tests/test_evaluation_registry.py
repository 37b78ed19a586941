"""evaluation/registry.py: each spec kind calls its attack with the spec's parameters; bad specs
fail naming the parameter."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks as A
from robustjax.evaluation.registry import attack_call, is_random, is_traced
from robustjax.evaluation.suites import AttackSpec

W = jax.random.normal(jax.random.PRNGKey(0), (12, 3))
f = lambda x: x.reshape(x.shape[0], -1) @ W  # noqa: E731
X = jax.random.uniform(jax.random.PRNGKey(1), (5, 2, 2, 3))
Y = jnp.array([0, 1, 2, 0, 1])
KEY = jax.random.PRNGKey(2)


def test_pgd_spec_is_the_attack_with_its_parameters_and_step_size_factor():
    spec = AttackSpec("PGD-5", "pgd", eps=(0.1,), norm=math.inf,
                      params={"steps": 5, "step_size_factor": 0.25})
    got = attack_call(spec)(f, X, Y, KEY, 0.1)
    ref = A.pgd(f, X, Y, eps=0.1, norm=math.inf, steps=5, step_size=0.025, key=KEY, clip=spec.clip)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    assert is_random(spec) and is_traced(spec)
    no_start = AttackSpec("PGD", "pgd", eps=(0.1,), norm=2,
                          params={"steps": 2, "step_size": 0.05, "random_start": False})
    assert not is_random(no_start)
    np.testing.assert_array_equal(
        np.asarray(attack_call(no_start)(f, X, Y, KEY, 0.1)),
        np.asarray(A.pgd(f, X, Y, eps=0.1, norm=2, steps=2, step_size=0.05, key=None,
                         random_start=False, clip=no_start.clip)))


def test_fgsm_and_wrm_specs():
    fgsm = AttackSpec("FGSM", "fgsm", eps=(0.2,), norm=2)  # FGSM is ℓ∞ whatever is given
    np.testing.assert_array_equal(np.asarray(attack_call(fgsm)(f, X, Y, KEY, 0.2)),
                                  np.asarray(A.fgm(f, X, Y, eps=0.2, norm=math.inf, clip=fgsm.clip)))
    assert not is_random(fgsm)
    wrm = AttackSpec("WRM", "wrm", eps=(1.0,), params={"steps": 3})
    np.testing.assert_array_equal(np.asarray(attack_call(wrm)(f, X, Y, KEY, 1.0)),
                                  np.asarray(A.wrm(f, X, Y, gamma=1.0, steps=3, clip=wrm.clip)))


def test_bad_specs_name_the_parameter():
    with pytest.raises(ValueError, match="stepz"):
        attack_call(AttackSpec("P", "pgd", eps=(0.1,), norm=2, params={"steps": 2, "stepz": 1,
                                                                        "step_size": 0.1}))
    with pytest.raises(ValueError, match="step_size"):
        attack_call(AttackSpec("P", "pgd", eps=(0.1,), norm=2, params={"steps": 2}))
    with pytest.raises(ValueError, match="step_size_factor"):
        attack_call(AttackSpec("P", "pgd", eps=(0.1,), norm=2,
                               params={"steps": 2, "step_size": 0.1, "step_size_factor": 0.5}))
