"""PGD-10 cost in units of one jitted input gradient, for three loop styles.

Model: the SGR MNIST CNN (conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10, 3x3 VALID convs,
ReLU, 2x2 max-pool; ``robustjax.nn.create("sgr_cnn", 10)``), batch 128 of 28x28x1, ℓ∞ PGD with
ε = 0.3, α = 0.01, 10 steps, on this machine's default JAX backend (XLA:CPU here).

Rows:
  * rolled    — ``robustjax.attacks.pgd(..., unroll=False)``: one jit program, ``lax.fori_loop``.
  * unrolled  — ``pgd(..., unroll=True)``: one jit program, loop fully unrolled by XLA.
  * python    — a jitted input gradient called from a Python loop, the step/projection/clip as
    eager ops (how the cleverhans JAX attacks are written).

Each time is the median of ``--repeats`` (≥ 5) runs after a warm-up (compilation excluded);
the ratio divides by 10 × the median time of one jitted input gradient measured in the same run.
Ratios near 1 mean the attack costs no more than its 10 gradients. Run:
``python benchmarks/attacks.py [--repeats 7] [--batch 128]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp

from robustjax.attacks import pgd
from robustjax.core import losses as L
from robustjax.core import norms as N


def sgr_mnist_cnn():
    try:
        from robustjax.nn import create

        return create("sgr_cnn", 10, width="mnist"), "robustjax.nn.create('sgr_cnn', 10)"
    except Exception:  # noqa: BLE001 — fall back to an equivalent local definition
        import flax.linen as nn

        class SGRMnistCNN(nn.Module):
            @nn.compact
            def __call__(self, x):
                for i, c in enumerate((32, 32, 64, 64)):
                    x = nn.relu(nn.Conv(c, (3, 3), padding="VALID")(x))
                    if i % 2 == 1:
                        x = nn.max_pool(x, (2, 2), (2, 2))
                x = x.reshape(x.shape[0], -1)
                x = nn.relu(nn.Dense(200)(x))
                x = nn.relu(nn.Dense(200)(x))
                return nn.Dense(10)(x)

        return SGRMnistCNN(), "local flax definition"


def median_time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))  # warm-up / compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    repeats = max(args.repeats, 5)

    model, source = sgr_mnist_cnn()
    kx, ky, ki, ka = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.uniform(kx, (args.batch, 28, 28, 1))
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    variables = model.init(ki, x[:1])
    f = partial(model.apply, variables)
    eps, alpha, steps = 0.3, 0.01, args.steps

    grad_fn = jax.jit(jax.grad(lambda xa, y: jnp.sum(L.cross_entropy(f(xa), y))))

    rolled = jax.jit(partial(pgd, f, eps=eps, norm=jnp.inf, step_size=alpha, steps=steps,
                             key=ka, unroll=False))
    unrolled = jax.jit(partial(pgd, f, eps=eps, norm=jnp.inf, step_size=alpha, steps=steps,
                               key=ka, unroll=True))

    def python_loop(x, y):
        delta = N.sample_uniform_ball(ka, x.shape, eps=eps, norm=jnp.inf)
        x_adv = jnp.clip(x + delta, 0.0, 1.0)
        for _ in range(steps):
            g = grad_fn(x_adv, y)
            x_adv = x_adv + alpha * jnp.sign(g)
            x_adv = x + jnp.clip(x_adv - x, -eps, eps)
            x_adv = jnp.clip(x_adv, 0.0, 1.0)
        return x_adv

    # the three implementations agree
    a, b, c = rolled(x, y), unrolled(x, y), python_loop(x, y)
    agree = max(float(jnp.max(jnp.abs(a - b))), float(jnp.max(jnp.abs(a - c))))

    t_grad = median_time(grad_fn, x, y, repeats=repeats)
    rows = [
        ("rolled fori_loop (unroll=False)", median_time(rolled, x, y, repeats=repeats)),
        ("unrolled (unroll=True)", median_time(unrolled, x, y, repeats=repeats)),
        ("python loop + jitted grad", median_time(python_loop, x, y, repeats=repeats)),
    ]
    print(f"model: SGR MNIST CNN via {source}; batch {args.batch}; backend {jax.default_backend()}"
          f" ({jax.device_count()} device(s)); PGD-{steps} linf; median of {repeats} runs")
    print(f"one jitted input gradient: {t_grad[0] * 1e3:.1f} ms (min {t_grad[1] * 1e3:.1f}, "
          f"max {t_grad[2] * 1e3:.1f})")
    print(f"max |difference| between the three PGD results: {agree:.2e}")
    print()
    print(f"| {'PGD-%d implementation' % steps:<34} | {'median s':>8} | {'min s':>7} | {'max s':>7} |"
          f" {'÷ (%d × grad)' % steps:>12} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 14}|")
    for name, (med, lo, hi) in rows:
        print(f"| {name:<34} | {med:8.3f} | {lo:7.3f} | {hi:7.3f} | {med / (steps * t_grad[0]):12.2f} |")


if __name__ == "__main__":
    main()
