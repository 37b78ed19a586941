"""Every training method of the five papers on mnist-5k, compared by PGD-ℓ∞ robust accuracy.

Claim checked (common to all five papers): each robust method raises accuracy under an ℓ∞ PGD
attack (ε = 0.1, 20 steps of 0.01, random start) above ERM's, on the same network (the SGR
MNIST CNN) and data. Trains each CPU config of ``configs/mnist5k/`` into ``WORKDIR/<name>``
(resuming finished runs), then evaluates clean and PGD accuracy on the 1,000 test digits.

    python -m experiments.mnist5k_methods --workdir runs/methods [--epochs 5] [--only erm,snr]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks
from robustjax.configs import apply_override, load_config
from robustjax.training.loop import fit, load_run
from robustjax.training.objectives import inference_logits_fn

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("erm", "adversarial_pgd_linf", "adversarial_fgsm", "adversarial_pgd_l2", "adversarial_wrm",
           "snr", "global_snr", "sgr", "gn", "soar", "sn")


def pgd_accuracy(workdir, *, eps=0.1, steps=20, step_size=0.01, batch_size=250, seed=0):
    """Clean and PGD-ℓ∞ accuracy of the run in ``workdir`` on its test split."""
    run, state = load_run(workdir)
    logits_fn = inference_logits_fn(run.model, state.params, state.model_state)
    attack = jax.jit(lambda x, y, k: attacks.pgd(logits_fn, x, y, eps=eps, norm=jnp.inf, step_size=step_size,
                                                  steps=steps, key=k, clip=(0.0, 1.0)))
    predict = jax.jit(lambda x: jnp.argmax(logits_fn(x), -1))
    images, labels = np.asarray(run.test_data.images), np.asarray(run.test_data.labels)
    clean = robust = 0
    for i in range(0, len(images), batch_size):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        clean += int(np.sum(np.asarray(predict(x)) == y))
        x_adv = attack(x, y, jax.random.fold_in(jax.random.PRNGKey(seed), i))
        robust += int(np.sum(np.asarray(predict(x_adv)) == y))
    return clean / len(images), robust / len(images)


def run_method(name, workdir, *, epochs=None, overrides=()):
    config = load_config(ROOT / "configs" / "mnist5k" / f"{name}.py")
    if epochs is not None:
        config.epochs = epochs
    for assignment in overrides:
        apply_override(config, assignment)
    start = time.perf_counter()
    fit(config, Path(workdir) / name, resume=True, progress=False)
    seconds = time.perf_counter() - start
    clean, robust = pgd_accuracy(Path(workdir) / name)
    return {"method": name, "epochs": config.epochs, "train_seconds": round(seconds, 1),
            "clean_acc": clean, "pgd_linf_0.1_acc": robust}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/methods")
    parser.add_argument("--epochs", type=int, default=None, help="override every config's epochs")
    parser.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(METHODS))
    args = parser.parse_args(argv)
    names = METHODS if args.only is None else tuple(args.only.split(","))
    rows = []
    for name in names:
        rows.append(run_method(name, args.workdir, epochs=args.epochs))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| method | epochs | clean acc | PGD-ℓ∞ ε=0.1 acc | train s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['epochs']} | {r['clean_acc']:.3f} | {r['pgd_linf_0.1_acc']:.3f} | {r['train_seconds']} |")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    (Path(args.workdir) / "methods.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
