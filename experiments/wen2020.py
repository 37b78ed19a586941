"""Wen, Li & Jia 2020 (towards understanding the regularization of adversarial robustness): the
paper's claims re-measured.

As the adversarial-training strength ε grows (ℓ∞ PGD-10 training, ε ∈ {0, 1, 2, 4} × a base
radius, as the paper's 0 / 4 / 8 / 16 over 255):

1. Fig. 3a: the train–test loss gap (generalization gap) falls and the training loss rises.
2. Fig. 1b, Fig. 4: the margin distribution concentrates around 0 (test set).
3. Fig. 1a, Fig. 5c–d: the standard deviation of each layer's singular values falls.
4. Fig. 5a–b: more test predictions get middle-valued probabilities (0.1 < p_y < 0.9).

CPU default: mnist-5k's first 2,000 training digits (a smaller training set so that the clean model
overfits within the budget, which is what the gaps measure), 10 epochs for every ε, base radius
0.05 (ε ∈ {0, 0.05, 0.1, 0.2}), PGD-10 with steps of 2.5ε/10 and a random start, adversarial loss
only (λ = 1, Wen App. B.1); 3 seeds. ``--config-set paper`` trains the ResNet-56 configs of
``configs/wen2020`` (ε = 4, 8, 16 /255) and ``configs/cifar10/erm.py`` for ε = 0.

    python -m experiments.wen2020 --workdir runs/wen2020 [--quick] [--resume] [--config-set paper]
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments import common

MULTIPLES = (0, 1, 2, 4)
BASE = 0.05
PAPER = {1: "cifar10_pgd_eps4", 2: "cifar10_pgd_eps8", 4: "cifar10_pgd_eps16"}
TRAIN_LIMIT = 2000


def label(m: int, base: float) -> str:
    return f"ε = {m * base:.3g}" if m else "ε = 0 (ERM)"


def train_all(s: common.Settings, base: float):
    runs, dirs = [], {}
    for seed in s.seeds:
        for m in MULTIPLES:
            name = f"eps{m}x"
            cpu = ["epochs=10", f"train_limit={TRAIN_LIMIT}"]
            if m == 0:
                config = common.make_config(s, "erm", seed=seed, cpu_overrides=cpu) \
                    if s.config_set == "cpu" or s.quick else _paper_erm(s, seed)
            else:
                eps = m * base
                cpu.append("method_kwargs=" + repr({"attack": "pgd_linf", "eps": eps, "steps": 10,
                                                    "step_size": 2.5 * eps / 10, "random_start": True,
                                                    "lam": 1.0, "labels": "true"}))
                config = common.make_config(s, "adversarial_pgd_linf", PAPER[m], seed=seed, cpu_overrides=cpu)
            runs.append(common.train(s, name, config, seed=seed))
            dirs[(m, seed)] = common.run_dir(s, name, seed)
    return runs, dirs


def _paper_erm(s: common.Settings, seed: int):
    """ε = 0 at paper scale: the ε = 4/255 config with standard training (same net and schedule)."""
    return common.make_config(s, "adversarial_pgd_linf", PAPER[1], seed=seed,
                              overrides=("method=erm", "method_kwargs={}"))


def measure(s: common.Settings, dirs: dict):
    from robustjax import analysis
    from robustjax.training.loop import load_run

    rows, seed0 = {}, {}
    for (m, seed), workdir in sorted(dirs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        run, logits_fn = common.load_model(workdir)
        _, state = load_run(workdir)
        n_test = max(s.examples, 64)
        train = common.train_points(run, n_test)
        test = common.test_points(run, n_test)
        gaps = analysis.generalization_gaps(logits_fn, train, test)
        test_logits = np.asarray(jax.jit(logits_fn)(test[0]))
        train_logits = np.asarray(jax.jit(logits_fn)(train[0]))
        margins = analysis.margin_distribution(test_logits, test[1])
        margins_train = analysis.margin_distribution(train_logits, train[1])
        hist = analysis.probability_and_loss_histograms(test_logits, test[1])
        spectra = analysis.network_spectral_report(run.model, state.variables(), run.input_shape,
                                                   key=jax.random.PRNGKey(0))
        g = gaps.summary()
        hs = hist.summary()
        sv = [r["sv_std"] for r in spectra.rows if r["sv_std"] is not None]
        rows[f"eps{m}x-s{seed}"] = {
            "multiple": m, "seed": seed, "loss_gap": g["loss_gap"], "error_gap": g["error_gap"],
            "train_loss": g["train_loss"], "test_loss": g["test_loss"], "train_error": g["train_error"],
            "test_error": g["test_error"], "test_margin_std": float(np.std(margins.margins)),
            "test_margin_median_abs": float(np.median(np.abs(margins.margins))),
            "train_margin_std": float(np.std(margins_train.margins)),
            "middle_probability_fraction": hs["fraction_middle_probability"],
            "sv_std_by_layer": sv, "sv_std_mean": float(np.mean(sv)),
            "layers": [r["name"] for r in spectra.rows if r["sv_std"] is not None]}
        if seed == s.seeds[0]:
            seed0[m] = {"gaps": gaps, "margins": margins, "hist": hist, "spectra": spectra}
        print(f"[wen2020] ε×{m} s{seed}: loss gap {g['loss_gap']:.3f} (train {g['train_loss']:.3f}, test "
              f"{g['test_loss']:.3f}), margin std {rows[f'eps{m}x-s{seed}']['test_margin_std']:.2f}, "
              f"mean sv std {rows[f'eps{m}x-s{seed}']['sv_std_mean']:.4f}", flush=True)
    return rows, seed0


def figures(s, seed0, base) -> list[str]:
    from robustjax import analysis

    lab = {m: label(m, base) for m in seed0}
    return [
        common.save_figure(s, analysis.plot_generalization_gaps({lab[m]: r["gaps"] for m, r in seed0.items()},
                           title="Wen 2020 Fig. 3: train/test losses and gaps vs AT strength"), "wen_fig3_gaps"),
        common.save_figure(s, analysis.plot_margin_distribution({lab[m]: r["margins"] for m, r in seed0.items()},
                           title="Wen 2020 Fig. 1b / 4: test margin distribution"), "wen_fig4_margins"),
        common.save_figure(s, analysis.plot_singular_value_std({lab[m]: r["spectra"] for m, r in seed0.items()},
                           title="Wen 2020 Fig. 1a / 5c: std of each layer's singular values"), "wen_fig5_sv_std"),
        common.save_figure(s, analysis.plot_probability_and_loss_histograms(
            {lab[m]: r["hist"] for m, r in seed0.items()},
            title="Wen 2020 Fig. 5a–b: estimated probability and loss of test points"), "wen_fig5_histograms"),
    ]


def trend(rows: dict, key: str, *, falls: bool) -> tuple[str, str]:
    """Verdict that ``key`` moves monotonically with ε in the stated direction: "holds" when every
    consecutive pair of ε moves that way beyond the seed spread, "holds weakly" when ε = 4× vs
    ε = 0 does, else "does not hold"; plus the per-ε means as text."""
    vals = {m: [r[key] for r in rows.values() if r["multiple"] == m] for m in MULTIPLES}
    sign = -1.0 if falls else 1.0
    pairs = [common.verdict([sign * v for v in vals[b]], [sign * v for v in vals[a]])
             for a, b in zip(MULTIPLES, MULTIPLES[1:])]
    ends = common.verdict([sign * v for v in vals[MULTIPLES[-1]]], [sign * v for v in vals[0]])
    if all(p == common.HOLDS for p in pairs):
        v = common.HOLDS
    elif ends in (common.HOLDS, common.WEAK):
        v = common.WEAK
    else:
        v = common.FAILS
    return v, " → ".join(common.fmt(common.spread(vals[m])) if len(vals[m]) == 1 else
                         f"{np.mean(vals[m]):.3g}±{np.std(vals[m], ddof=1):.2g}" for m in MULTIPLES)


def claims(rows, figs, base, nseeds) -> list[dict]:
    eps_txt = ", ".join(f"{m * base:.3g}" for m in MULTIPLES)
    v_gap, t_gap = trend(rows, "loss_gap", falls=True)
    v_trl, t_trl = trend(rows, "train_loss", falls=False)
    v_m, t_m = trend(rows, "test_margin_std", falls=True)
    v_mid, t_mid = trend(rows, "middle_probability_fraction", falls=False)
    v_sv, t_sv = trend(rows, "sv_std_mean", falls=True)
    seeds = f"{nseeds} seed{'s' if nseeds > 1 else ''}"
    return [
        {"claim": "Wen 2020: as AT strength ε grows the train–test loss gap falls (training loss rises)",
         "paper": "Fig. 3a (CIFAR-10/100, ResNet-56, ε = 0/4/8/16 /255): loss gap falls monotonically; training loss rises",
         "measured": f"ε = {eps_txt}: loss gap {t_gap}; train loss {t_trl} ({seeds}; gap: {v_gap}, train loss: {v_trl})",
         "verdict": common.all_hold([v_gap, v_trl]), "figures": [figs[0]]},
        {"claim": "Wen 2020: as ε grows the margins concentrate near 0 and predictions become less confident",
         "paper": "Fig. 1b, 4: test margin distributions narrow around 0; Fig. 5a: more middle-valued p_y",
         "measured": f"ε = {eps_txt}: std of test margins {t_m}; fraction of test p_y in (0.1, 0.9) {t_mid} "
                     f"({seeds}; margins: {v_m}, middle p_y: {v_mid})",
         "verdict": common.all_hold([v_m, v_mid]), "figures": [figs[1], figs[3]]},
        {"claim": "Wen 2020: as ε grows the std of the layers' singular values falls",
         "paper": "Fig. 1a, 5c–d: per-layer std of singular values lower at ε = 16 than at 4, almost every layer",
         "measured": f"ε = {eps_txt}: mean over layers of the per-layer std of singular values {t_sv} ({seeds}; {v_sv})",
         "verdict": v_sv, "figures": [figs[2]]},
    ]


def main(argv=None):
    p = common.parser("wen2020", __doc__.splitlines()[0], default_examples=1000, default_seeds=3)
    s = common.settings(p.parse_args(argv))
    started = time.perf_counter()
    base = BASE if s.config_set == "cpu" or s.quick else 4 / 255
    runs, dirs = train_all(s, base)
    rows, seed0 = measure(s, dirs)
    figs = figures(s, seed0, base)
    cl = claims(rows, figs, base, len(s.seeds))
    doc = common.write_results(s, cl, {"base_eps": base, "multiples": MULTIPLES, "models": rows}, runs,
                               started=started)
    for c in cl:
        print(f"[wen2020] {c['verdict']}: {c['claim']}", flush=True)
    return doc


if __name__ == "__main__":
    main()
