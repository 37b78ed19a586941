"""experiments/snr_power_start.py: the σ errors it reports behave as power iteration must."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.snr_power_start import ITERS, sigma_errors


def test_sigma_errors_on_a_small_mlp():
    """Random tanh MLP on 6x6 inputs. Errors are ≥ 0 (the Rayleigh quotient never exceeds σ₁),
    shrink with iterations, and a 'stale' start under the *same* parameters is the exact vector
    (error ~0 after one iteration)."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    w1 = jax.random.normal(k1, (36, 16)) / 6.0
    w2 = jax.random.normal(k2, (16, 4))
    f = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2  # noqa: E731
    images = np.asarray(jax.random.uniform(k3, (32, 6, 6, 1)))
    errors, gap = sigma_errors(f, f, images, key=jax.random.PRNGKey(1), iters=(1, 5),
                               batch_size=16)
    assert 0 < gap < 1
    for start, rows in errors.items():
        assert set(rows) == {1, 5}
        assert np.all(rows[1] > -1e-4) and np.all(rows[5] > -1e-4), start
        assert rows[5].mean() <= rows[1].mean() + 1e-6, start
    assert errors["same example, stale"][1].max() < 1e-4
    assert errors["random"][1].mean() > 1e-3
    assert ITERS == (1, 2, 5, 10, 20)
