"""Farnia, Zhang & Tse 2019 (generalizable adversarial training via spectral normalization): the
paper's claims re-measured.

1. Fig. 1, Table 1: spectral normalization (SN, W / max(1, σ(W)/β) on every layer operator) raises
   the adversarial test accuracy of FGM, PGM and WRM adversarial training and shrinks the gap
   between adversarial train and test accuracy.
2. Fig. 4: SN networks fit random labels much more slowly than unnormalized ones.

Attacks (Farnia §5): ℓ2 FGM and PGM (15 steps of 2ε/15) at ε = 0.05·E‖x‖₂, WRM with
γ = 0.04·E‖x‖₂ (15 steps); each model is evaluated under its own training attack on the training
digits it saw and on test digits. CPU default: the CPU configs of ``configs/mnist5k``
(``adversarial_pgd_l2`` with the attack set to FGM or PGM, ``adversarial_wrm``) on mnist-5k's first
1,000 training digits (so that adversarial training overfits within the budget: the gap is what is
measured), 12 epochs, with and without SN at β from ``configs/mnist5k/sn.py``; random labels: ERM
and FGM, 40 epochs on the same 1,000 digits; 3 seeds. ``--config-set paper`` uses
``configs/farnia2019/mnist_*`` (ELU-Net, full MNIST, β = 1.6).

    python -m experiments.farnia2019 --workdir runs/farnia2019 [--quick] [--resume] [--config-set paper]
"""

from __future__ import annotations

import time

import numpy as np

from experiments import common

METHODS = ("fgm", "pgm", "wrm")
TRAIN_LIMIT = 1000
EPOCHS = 12
RANDOM_EPOCHS = 40
KWARGS = {"fgm": {"attack": "fgm", "eps": 0.05, "lam": 1.0, "labels": "true", "relative_to_mean_norm": True},
          "pgm": {"attack": "pgd_l2", "eps": 0.05, "steps": 15, "step_size": 2 * 0.05 / 15, "random_start": False,
                  "lam": 1.0, "labels": "true", "relative_to_mean_norm": True},
          "wrm": {"attack": "wrm", "gamma": 0.04, "steps": 15, "lam": 1.0, "labels": "true",
                  "relative_to_mean_norm": True}}
CPU_NAMES = {"fgm": "adversarial_pgd_l2", "pgm": "adversarial_pgd_l2", "wrm": "adversarial_wrm", "erm": "erm"}
PAPER_NAMES = {"fgm": "mnist_fgm", "pgm": "mnist_pgm", "wrm": "mnist_wrm", "erm": "mnist_erm"}


def sn_beta(s: common.Settings) -> float:
    """β of the CPU SN config (``configs/mnist5k/sn.py``); the paper configs carry their own."""
    from robustjax.configs import load_config

    return float(load_config(common.ROOT / "configs" / "mnist5k" / "sn.py").sn_beta)


def config_for(s, method, *, sn: bool, seed: int, random_labels: bool = False):
    beta = sn_beta(s)
    cpu = [f"train_limit={TRAIN_LIMIT}", f"epochs={RANDOM_EPOCHS if random_labels else EPOCHS}"]
    if method != "erm":
        cpu.append("method_kwargs=" + repr(KWARGS[method]))
    cpu.append(f"sn_beta={beta}" if sn else "sn_beta=None")
    overrides = ["random_labels=True"] if random_labels else []
    if s.config_set == "paper" and not s.quick and not sn:
        overrides.append("sn_beta=None")
    return common.make_config(s, CPU_NAMES[method], PAPER_NAMES[method], seed=seed, cpu_overrides=cpu,
                              overrides=overrides)


def train_all(s: common.Settings):
    runs, dirs = [], {}
    for seed in s.seeds:
        for method in METHODS:
            for sn in (False, True):
                name = f"{method}{'_sn' if sn else ''}"
                runs.append(common.train(s, name, config_for(s, method, sn=sn, seed=seed), seed=seed))
                dirs[(name, seed)] = common.run_dir(s, name, seed)
        for method in ("erm", "fgm"):
            for sn in (False, True):
                name = f"random_{method}{'_sn' if sn else ''}"
                runs.append(common.train(s, name, config_for(s, method, sn=sn, seed=seed, random_labels=True),
                                         seed=seed))
    return runs, dirs


def attack_spec(method: str):
    from robustjax.evaluation import get_suite

    specs = {spec.name: spec for spec in get_suite("farnia-mnist")}
    if method == "wrm":
        return specs["WRM"]
    return specs["FGM" if method == "fgm" else "PGM-15"].replace(eps=(0.05,))


def measure(s: common.Settings, dirs: dict) -> dict:
    rows = {}
    for (name, seed), workdir in sorted(dirs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        method = name.split("_")[0]
        run, logits_fn = common.load_model(workdir)
        spec = attack_spec(method)
        out = {"name": name, "method": method, "sn": name.endswith("_sn"), "seed": seed}
        for split, (x, y) in (("train", common.train_points(run, s.examples)),
                              ("test", common.test_points(run, s.examples))):
            acc = common.robust_accuracies(logits_fn, x, y, [spec], seed=seed)
            out[f"{split}_clean"] = acc["clean"]
            out[f"{split}_adv"] = next(v for k, v in acc.items() if k.startswith(spec.name + "@"))
        out["adv_gap"] = out["train_adv"] - out["test_adv"]
        rows[f"{name}-s{seed}"] = out
        print(f"[farnia2019] {name} s{seed}: adversarial acc train {out['train_adv']:.3f} test {out['test_adv']:.3f} "
              f"(gap {out['adv_gap']:.3f}), clean test {out['test_clean']:.3f}", flush=True)
    return rows


def random_label_curves(runs: list[dict]) -> dict:
    """Training accuracy per epoch (mean over the epoch's batches, clean inputs) of the
    random-label runs: ``{name: [[acc per epoch] per seed]}``."""
    out: dict[str, list] = {}
    for r in runs:
        if r["name"].startswith("random_"):
            out.setdefault(r["name"], []).append([h["train_accuracy"] for h in r["history"]])
    return out


def figures(s, rows, curves) -> list[str]:
    from robustjax.analysis.plotting import new_figure, run_colors

    fig, axes = new_figure(1, 2, width=5.0, height=4.0)
    a, b = axes[0]
    xs = np.arange(len(METHODS))
    for k, (sn, color) in enumerate(((False, "C0"), (True, "C3"))):
        for split, marker, ls in (("train", "^", "--"), ("test", "o", "-")):
            vals = [[r[f"{split}_adv"] for r in rows.values() if r["method"] == m and r["sn"] == sn] for m in METHODS]
            a.errorbar(xs + 0.08 * (k - 0.5), [np.mean(v) for v in vals],
                       yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals], marker=marker, ls=ls,
                       color=color, capsize=3, label=f"{'with SN' if sn else 'no SN'}, {split}")
    a.set_xticks(xs, [m.upper() for m in METHODS])
    a.set_ylabel("adversarial accuracy under the training attack")
    a.set_title("Farnia Fig. 1 / Table 1: adversarial train vs test accuracy")
    a.legend(fontsize=8)
    for (name, per_seed), color in zip(sorted(curves.items()), run_colors(len(curves))):
        arr = np.asarray(per_seed)
        ep = np.arange(1, arr.shape[1] + 1)
        b.plot(ep, arr.mean(0), color=color, ls="-" if name.endswith("_sn") else "--", marker=".",
               label=name.replace("random_", "").upper().replace("_SN", " + SN") + f" ({len(arr)} seeds)")
        if len(arr) > 1:
            b.fill_between(ep, arr.min(0), arr.max(0), color=color, alpha=0.15)
    b.set_xlabel("epoch")
    b.set_ylabel("training accuracy on random labels")
    b.set_ylim(0, 1.02)
    b.axhline(0.1, color="gray", lw=0.8, ls=":")
    b.set_title("Farnia Fig. 4: fitting random labels")
    b.legend(fontsize=8)
    fig.tight_layout()
    return [common.save_figure(s, fig, "farnia_fig1_fig4")]


def claims(rows, curves, figs, beta) -> list[dict]:
    get = lambda m, sn, k: [r[k] for r in rows.values() if r["method"] == m and r["sn"] == sn]  # noqa: E731
    parts, txt = [], []
    for m in METHODS:
        v_acc = common.verdict(get(m, True, "test_adv"), get(m, False, "test_adv"))
        v_gap = common.verdict(get(m, False, "adv_gap"), get(m, True, "adv_gap"))
        parts += [v_acc, v_gap]
        txt.append(f"{m.upper()}: test adv. acc {common.fmt(common.spread(get(m, False, 'test_adv')))} → "
                   f"{common.fmt(common.spread(get(m, True, 'test_adv')))} with SN ({v_acc}), train−test gap "
                   f"{np.mean(get(m, False, 'adv_gap')):.3f} → {np.mean(get(m, True, 'adv_gap')):.3f} ({v_gap})")
    final = {n: [c[-1] for c in v] for n, v in curves.items()}
    half = {n: [int(np.argmax(np.asarray(c) >= 0.5)) + 1 if max(c) >= 0.5 else None for c in v]
            for n, v in curves.items()}
    v_rand = common.all_hold([common.verdict(final[f"random_{m}"], final[f"random_{m}_sn"]) for m in ("erm", "fgm")])
    return [
        {"claim": "Farnia 2019: SN raises the adversarial test accuracy of FGM/PGM/WRM training and shrinks its "
                  "train–test gap",
         "paper": "Table 1 MNIST ELU-Net (adv. test acc, no SN → SN): FGM 0.97 → 0.97, PGM 0.97 → 0.97, WRM 0.92 → 0.93; "
                  "CIFAR-10 AlexNet: FGM 0.54 → 0.63, PGM 0.50 → 0.62, WRM 0.61 → 0.65",
         "measured": f"β = {beta:g}; " + "; ".join(txt), "verdict": common.all_hold(parts), "figures": figs},
        {"claim": "Farnia 2019: SN networks fit random labels much more slowly",
         "paper": "Fig. 4 (CIFAR-10 AlexNet): without SN random labels are fit within the run; with SN training "
                  "accuracy stays far lower",
         "measured": "training accuracy on random labels after the last epoch: " + ", ".join(
             f"{n.replace('random_', '')} {common.fmt(common.spread(v))}" for n, v in sorted(final.items()))
             + "; first epoch ≥ 50 %: " + ", ".join(f"{n.replace('random_', '')} {v}" for n, v in sorted(half.items()))
             + f" ({v_rand})",
         "verdict": v_rand, "figures": figs},
    ]


def main(argv=None):
    p = common.parser("farnia2019", __doc__.splitlines()[0], default_examples=1000, default_seeds=3)
    s = common.settings(p.parse_args(argv))
    started = time.perf_counter()
    runs, dirs = train_all(s)
    rows = measure(s, dirs)
    curves = random_label_curves(runs)
    figs = figures(s, rows, curves)
    cl = claims(rows, curves, figs, sn_beta(s))
    doc = common.write_results(s, cl, {"sn_beta": sn_beta(s), "models": rows, "random_label_train_accuracy": curves},
                               runs, started=started)
    for c in cl:
        print(f"[farnia2019] {c['verdict']}: {c['claim']}", flush=True)
    return doc


if __name__ == "__main__":
    main()
