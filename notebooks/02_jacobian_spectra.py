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
# # 02 — Input-Jacobian spectra, power iteration and spectral-norm penalties
#
# Roth, Kilcher & Hofmann (2019) regularize the largest singular value σ₁ of each example's
# input Jacobian `J_f(x)` (the logits' derivative with respect to the pixels). robustjax
# estimates it per example by power iteration (eq. 11): one batched forward pass `J v` and one
# backward pass `Jᵀ u` per iteration for the whole batch, never materializing `J`.
#
# This notebook checks the estimate against the exact SVD of the materialized Jacobian, looks
# at the spectrum, evaluates the two penalties (eq. 12 and eq. 13), and measures how well
# projected gradient ascent (PGA) perturbations align with the top singular vector.

# %%
import os

import flax.linen as linen
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.tree_util import Partial

from robustjax import attacks, core, data, regularizers

SMOKE = os.environ.get("ROBUSTJAX_NOTEBOOK_SMOKE") == "1"  # the test suite's tiny run
EPOCHS = 1 if SMOKE else 3
STEPS_PER_EPOCH = 4 if SMOKE else None
B = 8 if SMOKE else 64  # test digits whose Jacobians are studied
ITERS = (1, 3) if SMOKE else (1, 2, 3, 5, 10, 20)

# %% [markdown]
# ## A small trained CNN (same as in 01_quickstart)

# %%
train, test = data.load("mnist-5k", "train"), data.load("mnist-5k", "test")
(mean,), (std,) = data.dataset_stats("mnist-5k")


class SmallCNN(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = (x - mean) / std
        x = linen.relu(linen.Conv(16, (3, 3), strides=(2, 2))(x))
        x = linen.relu(linen.Conv(32, (3, 3), strides=(2, 2))(x))
        x = linen.relu(linen.Dense(64)(x.reshape(x.shape[0], -1)))
        return linen.Dense(10)(x)


model = SmallCNN()
params = model.init(jax.random.key(0), train.images[:1])["params"]
tx = optax.adam(2e-3)
opt_state = tx.init(params)


@core.compile.jit
def train_step(params, opt_state, x, y):
    def loss_fn(p):
        return jnp.mean(core.cross_entropy(model.apply({"params": p}, x), y))

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


for epoch in range(EPOCHS):
    for step, (xb, yb) in enumerate(data.batches(train, 128, key=jax.random.key(epoch))):
        if STEPS_PER_EPOCH is not None and step >= STEPS_PER_EPOCH:
            break
        params, opt_state = train_step(params, opt_state, xb, yb)

logits_fn = Partial(model.apply, {"params": params})
x = jnp.asarray(test.images[:B])
y = jnp.asarray(test.labels[:B])
print(f"test accuracy on these {B} digits: "
      f"{float(jnp.mean(jnp.argmax(logits_fn(x), 1) == y)):.3f}")

# %% [markdown]
# ## The exact spectrum
# `core.jacobian_singular_values` materializes every example's `J` (`[B, K, D]`, K = 10 backward
# passes) and takes its SVD: ten singular values per example (Roth et al. 2019, Fig. 1). The
# gap σ₁/σ₂ sets how fast the power iteration below converges.

# %%
U, s_exact, Vt = core.jacobian_singular_values(logits_fn, x, compute_uv=True)
sigma1 = s_exact[:, 0]
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ranks = np.arange(1, s_exact.shape[1] + 1)
for row in np.asarray(s_exact):
    ax.plot(ranks, row, color="0.75", linewidth=0.7)
ax.plot(ranks, np.median(np.asarray(s_exact), axis=0), color="C0", marker="o", label="median")
ax.set_ylim(bottom=0)
ax.set_xticks(ranks)
ax.set_xlabel("singular value index k")
ax.set_ylabel("σ_k of J_f(x) (logit per pixel unit)")
ax.set_title(f"Input-Jacobian spectra of {B} test digits (gray: each digit)")
ax.legend()
fig.tight_layout()
plt.show()
print(f"median σ1/σ2 = {float(jnp.median(s_exact[:, 0] / s_exact[:, 1])):.2f}")

# %% [markdown]
# ## Power iteration against the exact SVD
# `core.jacobian_top_singular` runs `iters` power iterations from a random start and returns
# `(σ, u, v)` per example. The relative error of σ and the alignment `|⟨v, v₁⟩|` with the exact
# top right singular vector both converge within a few iterations; a digit whose σ₁ ≈ σ₂
# converges slowly (the "max" curve).

# %%
key = jax.random.key(3)
rel_err, v_align = {}, {}
for iters in ITERS:
    sigma, u, v = core.jacobian_top_singular(logits_fn, x, iters=iters, key=key)
    rel_err[iters] = np.asarray(jnp.abs(sigma - sigma1) / sigma1)
    v_align[iters] = np.asarray(jnp.abs(jnp.sum(v.reshape(B, -1) * Vt[:, 0], axis=1)))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
its = np.array(ITERS)
ax1.plot(its, [np.median(rel_err[i]) for i in ITERS], marker="o", label="median")
ax1.plot(its, [np.max(rel_err[i]) for i in ITERS], marker="s", label="max")
ax1.set_xscale("log")
ax1.set_yscale("log")
ax1.set_xlabel("power iterations")
ax1.set_ylabel("|σ − σ₁| / σ₁")
ax1.set_title("σ estimate vs exact SVD")
ax1.legend()
ax1.grid(alpha=0.3, which="both")
ax2.scatter(np.asarray(sigma1), np.asarray(sigma), s=12)
lim = [0, 1.05 * float(jnp.max(sigma1))]
ax2.plot(lim, lim, color="0.5", linewidth=1, label="y = x")
ax2.set_xlabel("σ₁, exact SVD")
ax2.set_ylabel(f"σ, {ITERS[-1]} power iterations")
ax2.set_title("per digit")
ax2.legend()
fig.tight_layout()
plt.show()
for iters in ITERS:
    print(f"{iters:3d} iterations: median rel. error {np.median(rel_err[iters]):.1e}, "
          f"median |<v, v1>| {np.median(v_align[iters]):.4f}")

# %% [markdown]
# ## The data-dependent spectral-norm penalties
# * eq. 12, `regularizers.jacobian_spectral_penalty`: `(uᵀ J v)²` per example with `u, v` from
#   the power iteration held constant; its batch mean estimates `E σ₁²`.
# * eq. 13, `regularizers.sos_spectral_penalty`: `‖f(x + ε v) − f(x)‖²`, which is `≈ ε² σ₁²` while
#   `x + ε v` stays in the region where `f` is linear. Both return `v` for a warm start.

# %%
pen12, v = regularizers.jacobian_spectral_penalty(logits_fn, x, iters=10, key=key)
print(f"eq. 12 penalty {float(pen12):.3f}   mean exact σ1² {float(jnp.mean(sigma1 ** 2)):.3f}")
eps_grid = (0.01, 0.3, 3.0) if SMOKE else (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 1.75, 3.0)
ratio = []
for eps in eps_grid:  # ε is an argument of the compiled program: one program for all ε
    pen13, _ = regularizers.sos_spectral_penalty(logits_fn, x, eps=eps, iters=10, v0=v)
    ratio.append(float(pen13) / eps**2)
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.plot(eps_grid, ratio, marker="o", label="eq. 13 penalty / ε²")
ax.axhline(float(jnp.mean(sigma1 ** 2)), color="C1", linestyle="--", label="mean σ₁² (exact SVD)")
ax.set_xscale("log")
ax.set_xlabel("ε (ℓ2, pixels)")
ax.set_ylabel("logit² per pixel²")
ax.set_title("Sum-of-squares penalty vs its linearization")
ax.legend()
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## PGA perturbations align with the top singular vector
# Roth et al. 2019 (§3–4) show that ℓ2 projected gradient ascent on the sum-of-squares loss
# `½‖f(x) − f(x')‖²` (eq. 17) *is* a power iteration on `JᵀJ` in the region where `f` is linear,
# so its perturbation converges to `±v₁`. Below, `|cos(δ, v_k)|` between each example's
# perturbation `δ = x_adv − x` and the exact right singular vectors `v_k`, averaged over the
# digits, for PGA with the SOS loss, PGA with the cross-entropy loss, and a random direction
# (≈ 1/√784 ≈ 0.04 for every k).
#
# The alignment is computed from the exact SVD (the cell marked `ALIGNMENT`); the analysis
# package will offer it as a function.

# %%
def alignment(delta, vt):
    """``|cos(δ_i, v_{i,k})|`` per example and singular index: ``[B, r]``."""  # ALIGNMENT
    d = delta.reshape(delta.shape[0], -1)
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return jnp.abs(jnp.einsum("bd,brd->br", d, vt))


pga = dict(eps=0.3, norm=2, step_size=0.1, steps=10, key=jax.random.key(4), clip=None)
deltas = {
    "PGA, sum-of-squares loss (eq. 17)": attacks.pgd(logits_fn, x, None, loss="sos", **pga) - x,
    "PGA, cross-entropy loss": attacks.pgd(logits_fn, x, y, loss="ce", **pga) - x,
    "random direction": jax.random.normal(jax.random.key(5), x.shape),
}
cos = {name: np.asarray(jnp.mean(alignment(d, Vt), axis=0)) for name, d in deltas.items()}
fig, ax = plt.subplots(figsize=(7, 3.6))
width = 0.8 / len(cos)
for i, (name, c) in enumerate(cos.items()):
    ax.bar(ranks + (i - (len(cos) - 1) / 2) * width, c, width=width, label=name)
ax.set_xticks(ranks)
ax.set_xlabel("right singular vector v_k of J_f(x)")
ax.set_ylabel("mean |cos(δ, v_k)|")
ax.set_ylim(0, 1)
ax.set_title("Alignment of ℓ2 PGA perturbations (ε = 0.3) with singular vectors")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
for name, c in cos.items():
    print(f"{name:36s} |cos(δ, v1)| = {c[0]:.3f}")
