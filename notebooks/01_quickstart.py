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
# # 01 — Quickstart: train a small model, attack it
#
# robustjax's core is a set of pure functions of a **model function**
# `logits_fn: x[B, ...] -> logits[B, K]`. This notebook trains a small Flax CNN on the embedded
# `mnist-5k` digits with your own `jax.jit` train step, then attacks it with FGSM, PGD (ℓ∞ and
# ℓ2) and DeepFool, and draws accuracy against the attack radius ε.
#
# Units: images stay in [0, 1] pixels; standardization is the model's first layer, so every ε is
# in pixel units.

# %%
import os
import time

import flax.linen as linen
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.tree_util import Partial

from robustjax import attacks, core, data, evaluation

SMOKE = os.environ.get("ROBUSTJAX_NOTEBOOK_SMOKE") == "1"  # the test suite's tiny run
EPOCHS = 1 if SMOKE else 5
STEPS_PER_EPOCH = 4 if SMOKE else None  # None: the whole training set
N_ATTACK = 32 if SMOKE else 500  # test digits to attack
PGD_STEPS = 3 if SMOKE else 20

# %% [markdown]
# ## Data
# `data.load` returns read-only NumPy arrays: images float32 NHWC in [0, 1], labels int32.

# %%
train = data.load("mnist-5k", "train")
test = data.load("mnist-5k", "test")
(mean,), (std,) = data.dataset_stats("mnist-5k")
print(f"train {train.images.shape}, test {test.images.shape}, pixel mean {mean}, std {std}")

# %% [markdown]
# ## A small model with the functional API
# Any Flax Linen module works. Standardization is its first layer.


# %%
class SmallCNN(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = (x - mean) / std
        x = linen.relu(linen.Conv(16, (3, 3), strides=(2, 2))(x))  # 14 x 14 x 16
        x = linen.relu(linen.Conv(32, (3, 3), strides=(2, 2))(x))  # 7 x 7 x 32
        x = linen.relu(linen.Dense(64)(x.reshape(x.shape[0], -1)))
        return linen.Dense(10)(x)


model = SmallCNN()
params = model.init(jax.random.key(0), train.images[:1])["params"]
tx = optax.adam(2e-3)
opt_state = tx.init(params)

# %% [markdown]
# Your own train step. `robustjax.core.compile.jit` is `jax.jit` with XLA:CPU's YNNPACK fusions
# off for this program: they are slow for the gradient with respect to `linen.Conv` kernels
# (see the module's docstring); on GPU/TPU it is plain `jax.jit`. Models built on the zoo's
# `robustjax.nn.Conv` need no special jit: the layer keeps those gradients away from YNNPACK.


# %%
@core.compile.jit
def train_step(params, opt_state, x, y):
    def loss_fn(p):
        return jnp.mean(core.cross_entropy(model.apply({"params": p}, x), y))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def accuracy(logits_fn, images, labels):
    return float(jnp.mean(jnp.argmax(logits_fn(jnp.asarray(images)), axis=1) == labels))


def train_epochs(params, opt_state, epochs, first_epoch=0):
    for epoch in range(first_epoch, first_epoch + epochs):
        start = time.perf_counter()
        batches = data.batches(train, 128, key=jax.random.fold_in(jax.random.key(1), epoch))
        for step, (x, y) in enumerate(batches):
            if STEPS_PER_EPOCH is not None and step >= STEPS_PER_EPOCH:
                break
            params, opt_state, loss = train_step(params, opt_state, x, y)
        acc = accuracy(Partial(model.apply, {"params": params}), test.images, test.labels)
        print(f"epoch {epoch + 1}: loss {float(loss):.3f}, test accuracy {acc:.3f} "
              f"({time.perf_counter() - start:.1f} s)")
    return params, opt_state


params, opt_state = train_epochs(params, opt_state, EPOCHS)

# %% [markdown]
# ## The model function
# `jax.tree_util.Partial(model.apply, variables)` is a model function whose parameters are
# *arrays of a pytree*: every robustjax function compiles one program for it and reuses that
# program for new parameters (a `lambda x: model.apply(variables, x)` works too, but a new
# lambda compiles anew).

# %%
logits_fn = Partial(model.apply, {"params": params})
x = jnp.asarray(test.images[:N_ATTACK])
y = jnp.asarray(test.labels[:N_ATTACK])
print(f"clean accuracy on the {len(x)} attacked digits: {accuracy(logits_fn, x, y):.3f}")

# %% [markdown]
# ## Four attacks
# Every attack takes `logits_fn`, the batch and its labels, keyword-only hyper-parameters named
# as in the papers, and an explicit `key` where it is random. `clip=(0, 1)` keeps valid images.
# DeepFool looks for the smallest ℓ2 perturbation that changes the prediction (no ε), here
# unconstrained as in Moosavi-Dezfooli et al. (`clip=None`): with `clip=(0, 1)` its steps are cut
# at the black background and many digits stall on the boundary until `max_iter`.

# %%
key = jax.random.key(2)
adversarial = {
    "FGSM ℓ∞ ε=0.1": attacks.fgsm(logits_fn, x, y, eps=0.1, clip=(0.0, 1.0)),
    f"PGD-{PGD_STEPS} ℓ∞ ε=0.1": attacks.pgd(logits_fn, x, y, eps=0.1, norm=jnp.inf,
                                             step_size=0.01, steps=PGD_STEPS, key=key,
                                             clip=(0.0, 1.0)),
    f"PGD-{PGD_STEPS} ℓ2 ε=1.5": attacks.pgd(logits_fn, x, y, eps=1.5, norm=2, step_size=0.2,
                                             steps=PGD_STEPS, key=key, clip=(0.0, 1.0)),
    "DeepFool (minimal ℓ2)": attacks.deepfool(logits_fn, x, max_iter=5 if SMOKE else 50,
                                              clip=None)[0],
}
for name, x_adv in adversarial.items():
    delta = (x_adv - x).reshape(len(x), -1)
    print(f"{name:24s} accuracy {accuracy(logits_fn, x_adv, y):.3f}   "
          f"mean ‖δ‖₂ {float(jnp.mean(jnp.linalg.norm(delta, axis=1))):.2f}   "
          f"max ‖δ‖∞ {float(jnp.max(jnp.abs(delta))):.3f}")

# %% [markdown]
# The adversarial examples: each column one test digit, each row an attack; the title is the
# model's prediction (red when wrong).

# %%
cols = 8
rows = {"clean": x, **adversarial}
fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.45 * len(rows)))
for r, (name, images) in enumerate(rows.items()):
    pred = np.asarray(jnp.argmax(logits_fn(images[:cols]), axis=1))
    for c in range(cols):
        ax = axes[r, c]
        ax.imshow(np.asarray(images[c, :, :, 0]), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"pred {pred[c]}", fontsize=8, color="black" if pred[c] == y[c] else "red")
    axes[r, 0].set_ylabel(name.replace(" ε", "\nε").replace(" (", "\n("), fontsize=7)
fig.suptitle("Adversarial examples (pixel values in [0, 1])", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Accuracy against ε
# `evaluation.accuracy_vs_eps` runs one attack at several radii over a dataset in chunks; ε is a
# traced argument, so all radii share one compiled program.

# %%
eps_grid = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2]
subset = (np.asarray(x), np.asarray(y))
curves = {
    name: evaluation.accuracy_vs_eps(logits_fn, subset, eps=eps_grid, attack=attack,
                                     norm=jnp.inf, steps=PGD_STEPS // 2, key=0,
                                     batch_size=len(x), progress=False)
    for name, attack in (("FGSM", "fgsm"), (f"PGD-{PGD_STEPS // 2}", "pgd"))
}
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for name, curve in curves.items():
    ax.plot(curve.eps, 100 * curve.accuracy, marker="o", label=name)
ax.set_xlabel("ε (ℓ∞, pixels in [0, 1])")
ax.set_ylabel("accuracy (%)")
ax.set_ylim(0, 100)
ax.grid(alpha=0.3)
ax.legend()
ax.set_title(f"SmallCNN on {len(x)} mnist-5k test digits")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## New parameters, same compiled program
# Train one more epoch and attack again: the attack's program is reused (0 compilations),
# because the parameters of a `Partial` are arguments of the compiled program, not constants.

# %%
params, opt_state = train_epochs(params, opt_state, 1, first_epoch=EPOCHS)
with core.compile_stats() as stats:
    start = time.perf_counter()
    x_adv = attacks.pgd(Partial(model.apply, {"params": params}), x, y, eps=0.1, norm=jnp.inf,
                        step_size=0.01, steps=PGD_STEPS, key=key, clip=(0.0, 1.0))
    x_adv.block_until_ready()
print(f"PGD-{PGD_STEPS} on new parameters: {stats.compiles} compilations, "
      f"{time.perf_counter() - start:.2f} s")
assert stats.compiles == 0
