"""Speed and memory of per-example Jacobian power iteration (Roth et al. 2019, eq. 11).

For the SGR MNIST CNN (``robustjax.nn.create("sgr_cnn", 10)``: conv32-conv32-pool-conv64-
conv64-pool-fc200-fc200-fc10, 3x3 VALID, ReLU) at batch 128, prints

* time of ``jacobian_top_singular(iters=10)`` ÷ (10 × one batched jvp + vjp), for each way
  of forming J·v / Jᵀ·u (``linearize`` + ``linear_transpose``, ``jvp``/``vjp`` re-evaluated,
  ``vjp`` + its transpose);
* peak memory of that call ÷ peak memory of one ERM training step (cross-entropy,
  ``value_and_grad``, SGD update), from XLA's compiled memory analysis
  (``jax.jit(f).lower(...).compile().memory_analysis()``: arguments + outputs + temporaries −
  aliased);

medians of ``--repeats`` (≥ 5) timed runs after one warm-up. Run:
``python benchmarks/spectral.py [--batch 128] [--repeats 7]``. Ratios are measured in one
run on one machine; absolute times are printed for reference only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from robustjax.core.jacobian import JACOBIAN_METHODS, jacobian_top_singular


def build_model():
    try:
        from robustjax.nn import create

        return create("sgr_cnn", 10), "robustjax.nn.create('sgr_cnn', 10)"
    except (ImportError, AttributeError):  # the zoo is not there: the same network inline
        import flax.linen as nn

        class SGRMnist(nn.Module):
            @nn.compact
            def __call__(self, x, train=False):
                for i, c in enumerate((32, 32, 64, 64)):
                    x = nn.relu(nn.Conv(c, (3, 3), padding="VALID")(x))
                    if i in (1, 3):
                        x = nn.max_pool(x, (2, 2), (2, 2))
                x = x.reshape(x.shape[0], -1)
                x = nn.relu(nn.Dense(200)(x))
                x = nn.relu(nn.Dense(200)(x))
                return nn.Dense(10)(x)

        return SGRMnist(), "inline conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10"


def peak_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


def median_time(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")

    model, desc = build_model()
    key = jax.random.PRNGKey(0)
    x = jax.random.uniform(key, (args.batch, 28, 28, 1))
    y = jax.random.randint(jax.random.PRNGKey(1), (args.batch,), 0, 10)
    variables = model.init(key, x[:1])
    params = variables["params"]
    v0 = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    u0 = jax.random.normal(jax.random.PRNGKey(3), (args.batch, 10))

    def logits_fn(p, z):
        return model.apply({**variables, "params": p}, z)

    @jax.jit
    def one_jvp_vjp(p, x, v, u):
        f = lambda z: logits_fn(p, z)  # noqa: E731
        jv = jax.jvp(f, (x,), (v,))[1]
        jtu = jax.vjp(f, x)[1](u)[0]
        return jv, jtu

    @jax.jit
    def erm_step(p, x, y):
        def loss(p):
            logp = jax.nn.log_softmax(logits_fn(p, x))
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

        l, g = jax.value_and_grad(loss)(p)
        return jax.tree.map(lambda a, b: a - 0.01 * b, p, g), l

    print(f"model: {desc}; batch {args.batch}; {args.iters} power iterations; "
          f"median of {args.repeats} runs; backend {jax.default_backend()}, {jax.device_count()} device(s)")
    t_one = median_time(one_jvp_vjp, (params, x, v0, u0), args.repeats)
    mem_erm = peak_bytes(erm_step.lower(params, x, y).compile())
    t_erm = median_time(erm_step, (params, x, y), args.repeats)
    print(f"one batched jvp+vjp: {t_one * 1e3:.2f} ms; one ERM step: {t_erm * 1e3:.2f} ms, "
          f"peak {mem_erm / 2**20:.1f} MiB")
    print(f"{'method':<16}{'time ms':>10}{'time / (iters x jvp+vjp)':>28}{'peak MiB':>10}{'peak / ERM step':>18}")
    for method in JACOBIAN_METHODS:
        fn = jax.jit(lambda p, x, v, method=method: jacobian_top_singular(
            lambda z: logits_fn(p, z), x, iters=args.iters, v0=v, method=method))
        mem = peak_bytes(fn.lower(params, x, v0).compile())
        t = median_time(fn, (params, x, v0), args.repeats)
        print(f"{method:<16}{t * 1e3:>10.2f}{t / (args.iters * t_one):>28.3f}"
              f"{mem / 2**20:>10.1f}{mem / mem_erm:>18.3f}")


if __name__ == "__main__":
    main()
