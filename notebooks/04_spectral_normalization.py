# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 — Spectral normalization of convolutions
#
# Farnia, Zhang & Tse (2019) bound every layer's spectral norm σ(W) ≤ β by replacing `W` with
# `W / max(1, σ(W)/β)` (Alg. 1, eq. 9). For a convolution, σ must be the norm of the
# **convolution operator** on the layer's input, which depends on stride and padding, not the
# norm of the kernel reshaped to a matrix (App. A.1). This notebook
#
# 1. compares the operator norm by power iteration (`nn.conv_operator_norm`) with the exact SVD
#    of the materialized operator and with the reshaped-kernel norm, for several strides and
#    paddings;
# 2. trains a small CNN with and without spectral normalization (`nn.SpectralNormConv`,
#    `nn.SpectralNormDense`) and plots every layer's σ (`analysis.network_spectral_report`).

# %%
import functools
import os
import time

import flax.linen as linen
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.tree_util import Partial

from robustjax import analysis, attacks, core, data, nn

SMOKE = os.environ.get("ROBUSTJAX_NOTEBOOK_SMOKE") == "1"  # the test suite's tiny run
EPOCHS = 1 if SMOKE else 3
STEPS_PER_EPOCH = 2 if SMOKE else None
N_TEST = 32 if SMOKE else 500
BETA = 2.0

# %% [markdown]
# ## 1. The norm of a convolution operator
# A random 3×3 kernel with 2 input and 4 output channels on 10×10 inputs. The exact reference
# materializes the operator: the convolution of every basis image is one row of `Aᵀ`
# (`10·10·2 = 200` rows), and `numpy.linalg.svd` gives its largest singular value.

# %%
kernel = jax.random.normal(jax.random.key(0), (3, 3, 2, 4)) / 3.0
input_shape = (10, 10, 2)


def exact_operator_norm(kernel, input_shape, strides, padding):
    d = int(np.prod(input_shape))
    basis = jnp.eye(d, dtype=kernel.dtype).reshape((d,) + input_shape)
    rows = core.conv_apply(basis, kernel, strides=strides, padding=padding).reshape(d, -1)
    return float(np.linalg.svd(np.asarray(rows, np.float64), compute_uv=False)[0])


cases = [(1, "SAME"), (1, "VALID"), (1, "CIRCULAR"), (2, "SAME"), (2, "VALID"), (3, "SAME")]
table = []
for strides, padding in cases:
    table.append({
        "case": f"stride {strides}, {padding}",
        "exact": exact_operator_norm(kernel, input_shape, strides, padding),
        "power": float(nn.conv_operator_norm(kernel, input_shape, strides=strides,
                                             padding=padding, iters=100)),
    })
reshaped = float(nn.reshaped_kernel_norm(kernel))
fft = float(nn.conv_singular_values_fft(kernel, input_shape[:2])[0])  # stride-1 circular only
print(f"{'case':22s} {'exact SVD':>10s} {'power it.':>10s} {'reshaped':>10s}")
for row in table:
    print(f"{row['case']:22s} {row['exact']:10.4f} {row['power']:10.4f} {reshaped:10.4f}")
print(f"FFT spectrum of the stride-1 circular convolution (Sedghi et al.): σ_max = {fft:.4f}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.6))
pos = np.arange(len(table))
ax.bar(pos - 0.2, [r["exact"] for r in table], width=0.4, label="operator norm, exact SVD")
ax.bar(pos + 0.2, [r["power"] for r in table], width=0.4,
       label="operator norm, 100 power iterations")
ax.axhline(reshaped, color="C3", linestyle="--", label="reshaped-kernel norm (same for all)")
ax.set_xticks(pos)
ax.set_xticklabels([r["case"] for r in table], rotation=20, fontsize=8)
ax.set_ylabel("largest singular value σ")
ax.set_title("3×3 convolution, 2→4 channels, 10×10 input")
ax.legend(fontsize=8, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# The reshaped-kernel norm is one number for every geometry; the operator norm is not. With
# stride 1 every input pixel enters 9 windows and the operator norm is about twice the
# reshaped one; stride 2 leaves fewer overlaps; with stride 3 the 3×3 windows do not overlap,
# the operator is block diagonal with the reshaped kernel as its blocks, and the two norms are
# equal. The zero padding of `SAME`/`VALID` changes the norm from the circular case, where the
# FFT gives it exactly.

# %% [markdown]
# ## 2. Training with and without spectral normalization
# `nn.SpectralNormConv` and `nn.SpectralNormDense` are drop-in `linen.Conv` / `linen.Dense`
# whose kernel is `W / max(1, σ/β)`, σ the operator norm from a power-iteration vector stored in
# the `"spectral"` collection (`nn.spectral_normalized(name, ..., beta=β)` does the same for the
# zoo's models). Train with `mutable=["spectral"]`, which advances the power iteration once per
# step; attack and evaluate without (the vectors are then read only).

# %%
train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
(mean,), (std,) = data.dataset_stats("mnist-5k")


class SmallCNN(linen.Module):
    beta: float | None = None  # None: plain layers

    @linen.compact
    def __call__(self, x):
        if self.beta is None:
            conv, dense = linen.Conv, linen.Dense
        else:
            conv = functools.partial(nn.SpectralNormConv, beta=self.beta)
            dense = functools.partial(nn.SpectralNormDense, beta=self.beta)
        x = (x - mean) / std
        x = linen.relu(conv(16, (3, 3), strides=(2, 2), name="conv1")(x))  # 14 x 14 x 16
        x = linen.relu(conv(32, (3, 3), strides=(2, 2), name="conv2")(x))  # 7 x 7 x 32
        x = linen.relu(dense(64, name="dense1")(x.reshape(x.shape[0], -1)))
        return dense(10, name="logits")(x)


models = {"plain": SmallCNN(), f"SN, β={BETA:g}": SmallCNN(beta=BETA)}
tx = optax.adam(2e-3)


def make_step(model):
    @core.compile.jit
    def step(params, spectral, opt_state, x, y):
        def loss_fn(p):
            logits, updates = model.apply({"params": p, **spectral}, x, mutable=["spectral"])
            return jnp.mean(core.cross_entropy(logits, y)), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates_p, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates_p), {**spectral, **updates}, opt_state, loss

    return step


variables = {}
for name, model in models.items():
    v = model.init(jax.random.key(0), train.images[:1])
    params, spectral = v["params"], {k: c for k, c in v.items() if k != "params"}
    step, opt_state = make_step(model), tx.init(params)
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        for i, (x, y) in enumerate(data.batches(train, 128, key=jax.random.key(epoch))):
            if STEPS_PER_EPOCH is not None and i >= STEPS_PER_EPOCH:
                break
            params, spectral, opt_state, loss = step(params, spectral, opt_state, x, y)
    variables[name] = {"params": params, **spectral}
    print(f"{name:10s} trained {EPOCHS} epochs in {time.perf_counter() - start:.1f} s, "
          f"last loss {float(loss):.3f}")

# %% [markdown]
# Clean and PGD-20 accuracy (ℓ∞, ε = 0.1) on test digits; the model function applies the
# trained variables without `mutable`, so the spectral vectors are read only.

# %%
x, y = jnp.asarray(test.images[:N_TEST]), jnp.asarray(test.labels[:N_TEST])
for name, model in models.items():
    logits_fn = Partial(model.apply, variables[name])
    x_adv = attacks.pgd(logits_fn, x, y, eps=0.1, norm=jnp.inf, step_size=0.01,
                        steps=2 if SMOKE else 20, key=jax.random.key(1), clip=(0.0, 1.0))
    clean = float(jnp.mean(jnp.argmax(logits_fn(x), 1) == y))
    robust = float(jnp.mean(jnp.argmax(logits_fn(x_adv), 1) == y))
    print(f"{name:10s} clean {clean:.3f}   PGD ε=0.1 {robust:.3f}")

# %% [markdown]
# ## Layer spectra
# `analysis.network_spectral_report` measures every layer's operator norm (power iteration
# through the true convolution, for the kernel the layer computes with) and the
# reshaped-kernel norm; their products bound the network's Lipschitz constant. The normalized
# layers end at σ ≈ β (slightly above: the power iteration advances once per step and lags
# the last update).

# %%
reports = {name: analysis.network_spectral_report(model, variables[name], (28, 28, 1),
                                                  iters=50 if SMOKE else 200)
           for name, model in models.items()}
print(reports[f"SN, β={BETA:g}"])

fig, ax = plt.subplots(figsize=(7.5, 3.8))
layer_names = [r["name"] for r in reports["plain"].rows]
pos = np.arange(len(layer_names))
for i, (name, report) in enumerate(reports.items()):
    ax.bar(pos + (i - 0.5) * 0.4, [r["sigma_operator"] for r in report.rows], width=0.4,
           label=f"{name} (product {report.product_operator:.3g})")
ax.axhline(BETA, color="k", linestyle="--", linewidth=1, label=f"β = {BETA:g}")
ax.set_xticks(pos)
ax.set_xticklabels(layer_names, fontsize=8)
ax.set_ylabel("operator norm σ of the layer")
ax.set_title(f"Layer operator norms after {EPOCHS} epochs of mnist-5k")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
