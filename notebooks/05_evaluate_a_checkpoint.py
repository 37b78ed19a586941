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
# # 05 — Evaluate a checkpoint: attack suites, gradient-masking checks, transfer, reports
#
# Train a run with the command-line interface, load its checkpoints, and evaluate them with
# `evaluation.evaluate`: a named attack suite over the test set in chunks, the pointwise worst
# case per threat model, the gradient-masking checks, a transfer (black-box) matrix and the
# JSON / Markdown / PNG reports that `robustjax evaluate` writes.

# %%
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
from IPython.display import Image, Markdown, display

from robustjax import core, data, evaluation
from robustjax.training.loop import load_run
from robustjax.training.objectives import inference_logits_fn

SMOKE = os.environ.get("ROBUSTJAX_NOTEBOOK_SMOKE") == "1"  # the test suite's tiny run
EPOCHS = 1 if SMOKE else 2
N_EVAL = 50 if SMOKE else 200  # test digits evaluated
WORKDIR = Path(tempfile.mkdtemp(prefix="robustjax-notebook-05-")) / "erm"
CONFIG = next(p for p in (Path("../configs/mnist5k/erm.py"), Path("configs/mnist5k/erm.py"))
              if p.exists())

# %% [markdown]
# ## Train with the CLI
# `robustjax train` builds the run from a config file (here ERM on the SGR MNIST CNN, SGR
# Table 5), saves an orbax checkpoint every epoch and its metrics into the work directory.

# %%
command = [sys.executable, "-m", "robustjax", "train", "--config", str(CONFIG),
           "--workdir", str(WORKDIR), "--set", f"epochs={EPOCHS}"]
print("$ robustjax " + " ".join(command[3:]))
start = time.perf_counter()
done = subprocess.run(command, capture_output=True, text=True)
print(done.stdout[-2000:] or done.stderr[-2000:])
done.check_returncode()
print(f"({time.perf_counter() - start:.0f} s)")
print(sorted(p.name for p in WORKDIR.iterdir()))

# %% [markdown]
# ## Load the checkpoint
# `load_run` rebuilds the model from the run's config and restores the newest checkpoint;
# `inference_logits_fn` is the model function in inference mode (BatchNorm statistics and
# spectral vectors read only): a `jax.tree_util.Partial` over the variables.

# %%
run, state = load_run(WORKDIR)
logits_fn = inference_logits_fn(run.model, state.params, state.model_state)
test = data.subset(run.test_data, N_EVAL)
print(f"model {run.config.model}, {len(test.labels)} test digits")

# %% [markdown]
# ## An attack suite
# `mnist-quick`: FGSM, PGD-20 and uniform noise in ℓ∞ balls of ε = 0.1, 0.2, 0.3. A digit counts
# as robust under a threat model only if it is classified correctly and *every* attack of that
# ball (and of the smaller balls of the same norm) fails on it. ε is a traced argument, so each
# attack compiles once for all its radii.

# %%
print([s.name for s in evaluation.SUITES["mnist-quick"]], "of", len(evaluation.list_suites()),
      "registered suites")
report = evaluation.evaluate(logits_fn, test, suite="mnist-quick", batch_size=N_EVAL, key=0,
                             progress=False)
print(report.table())
print(report.robust_accuracy())

# %% [markdown]
# ## Gradient-masking checks
# The same suite on a model whose gradients are useless: the input is quantized to 8 levels
# before the network (`jnp.round` has a zero derivative), a classic cause of *apparent*
# robustness. The checks compare the attacks with each other and with noise, look at gradient
# norms and softmax saturation, and explain each flag.

# %%
def masked_fn(x):
    return logits_fn(jnp.round(x * 8.0) / 8.0)


masked = evaluation.evaluate(masked_fn, test, suite="mnist-quick", batch_size=N_EVAL, key=0,
                             progress=False)
print(masked.table())
for warning in masked.warnings:
    print(f"\n[{warning.name}] {warning.message}\n  → {warning.explanation}")

# %% [markdown]
# ## Every epoch's checkpoint, one compilation
# `load_run(workdir, epoch=k)` restores epoch k. The model function of every checkpoint has the
# same structure (a `Partial` of the same model's `apply` over new arrays), so `evaluate`
# reuses the programs compiled for the first one.

# %%
pgd_suite = [evaluation.AttackSpec("PGD-20", "pgd", eps=(0.1,), norm=jnp.inf,
                                   params={"steps": 2 if SMOKE else 20,
                                           "step_size_factor": 0.125})]
epochs, clean, robust, functions = [], [], [], {}
for epoch in range(1, EPOCHS + 1):
    run_k, state_k = load_run(WORKDIR, epoch=epoch)
    functions[f"epoch {epoch}"] = inference_logits_fn(run_k.model, state_k.params,
                                                      state_k.model_state)
    with core.compile_stats() as stats:
        r = evaluation.evaluate(functions[f"epoch {epoch}"], test, suite=pgd_suite,
                                batch_size=N_EVAL, key=0, progress=False, checks=False)
    epochs.append(epoch)
    clean.append(r.clean_accuracy)
    robust.append(r.accuracy("PGD-20", 0.1))
    print(f"epoch {epoch}: clean {clean[-1]:.3f}, PGD-20 ε=0.1 {robust[-1]:.3f} "
          f"({stats.compiles} compilations)")

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot(epochs, [100 * a for a in clean], marker="o", label="clean")
ax.plot(epochs, [100 * a for a in robust], marker="s", label="PGD-20, ℓ∞ ε = 0.1")
ax.set_xticks(epochs)
ax.set_xlabel("epoch (checkpoint)")
ax.set_ylabel("accuracy (%)")
ax.set_ylim(0, 100)
ax.grid(alpha=0.3)
ax.legend()
ax.set_title(f"ERM run, {len(test.labels)} test digits")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Transfer (black-box) matrix
# Adversarial examples crafted on each source model (columns), accuracy of each target (rows)
# on them, beside each target's white-box accuracy. The masked model falls to examples crafted
# on the unmasked one: its white-box robustness was an artefact.

# %%
models = {"first epoch": functions["epoch 1"], "last epoch": logits_fn, "masked": masked_fn}
transfer = evaluation.transfer_matrix(
    models, test, {"name": "PGD-10", "attack": "pgd", "eps": [0.1], "norm": "inf",
                   "params": {"steps": 2 if SMOKE else 10, "step_size_factor": 0.25}},
    key=0, batch_size=N_EVAL, progress=False)
print(transfer.table())

# %% [markdown]
# ## Reports
# `evaluation.write_reports` writes `robustness.json` (RobustBench-style names),
# `robustness.md` and `robustness.png` (accuracy against ε), as `robustjax evaluate --workdir`
# does.

# %%
paths = evaluation.write_reports(report, WORKDIR)
print("\n".join(str(p) for p in paths))
display(Markdown(report.to_markdown()))
display(Image(filename=str(next(p for p in paths if str(p).endswith(".png")))))
