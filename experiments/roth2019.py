"""Roth, Kilcher & Hofmann 2019 (adversarial training generalizes data-dependent spectral norm
regularization): the paper's claims re-measured.

1. Fig. 1 right, Fig. 3 right: ℓ2-PGA perturbations align with the top right singular vector of
   the input Jacobian far above a random direction, more so for adversarially trained / SNR
   models.
2. Fig. 1 left, Fig. 2, §5: adversarial training and data-dependent SNR damp the Jacobian's
   spectrum and keep the network more linear along adversarial paths (deviation from linearity of
   φ^{L−1}, σ_max along the path); global SNR does not act on the data-dependent spectrum.
3. Fig. 3 left, Table 1: SNR (eq. 13) and ℓ2-PGA adversarial training reach similar robustness.

Models (as the paper: the regularized ones fine-tune the standard model, App. 7.3): ERM; ℓ2-PGA
AT (10 steps of 2ε/10, random start, λ = 0.5 mix as eq. 14); SNR (eq. 13, λ = 1e-2); global SNR
(eq. 10, λ = 3e-4). ε is the SNR config's radius resolved to pixels (``configs/mnist5k/snr.py``
through ``robustjax.units``) and is used for AT, the attacks and the dashed lines alike. CPU
default: mnist-5k, ERM 15 epochs then 5 epochs of each method, 3 seeds; diagnostics on 200 test
points (the paper's 200), accuracy curves on 500.

    python -m experiments.roth2019 --workdir runs/roth2019 [--quick] [--resume] [--config-set paper]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common

METHODS = ("erm", "pga_at", "snr", "global_snr")
LABELS = {"erm": "ERM", "pga_at": "ℓ2-PGA AT", "snr": "SNR (data-dep.)", "global_snr": "global SNR",
          "random": "random network"}
CPU = {"pga_at": ("adversarial_pgd_l2", "cifar10_adversarial_pga_l2"), "snr": ("snr", "cifar10_snr"),
       "global_snr": ("global_snr", "cifar10_global_snr")}
EPS_MULTIPLES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def training_eps(s: common.Settings) -> float:
    """The SNR config's ε in pixels (after the units conversion of the public config path)."""
    return float(common.resolved_method_kwargs(common.make_config(s, "snr", "cifar10_snr"))["eps"])


def train_all(s: common.Settings, eps: float):
    runs, dirs = [], {}
    for seed in s.seeds:
        runs.append(common.train(s, "erm", common.make_config(s, "erm", "cifar10_erm", seed=seed), seed=seed))
        dirs[("erm", seed)] = erm_dir = common.run_dir(s, "erm", seed)
        for name, (cpu_name, paper_name) in CPU.items():
            cpu = ["epochs=5"]
            if name == "pga_at":  # the same ε as SNR, absolute, Roth's α = 2ε/10 and random start
                cpu.append("method_kwargs=" + repr({"attack": "pgd_l2", "eps": eps, "steps": 10,
                                                    "step_size": 2 * eps / 10, "random_start": True,
                                                    "lam": 0.5, "labels": "true"}))
            config = common.make_config(s, cpu_name, paper_name, seed=seed, cpu_overrides=cpu,
                                        overrides=(f"init_from={str(erm_dir)!r}",))
            runs.append(common.train(s, name, config, seed=seed))
            dirs[(name, seed)] = common.run_dir(s, name, seed)
    return runs, dirs


def pga(logits_fn, x, y, eps, seed):
    """Roth's ℓ2-PGA attack (10 steps of 2ε/10, random start); returns δ = x_adv − x."""
    from robustjax import attacks

    x_adv = attacks.pgd(logits_fn, x, y, eps=eps, norm=2, steps=10, step_size=0.2 * eps, random_start=True,
                        key=jax.random.PRNGKey(seed), clip=(0.0, 1.0))
    return x_adv - x


def random_network(s: common.Settings, like):
    """An untrained network of the same architecture (Fig. 1's "random network")."""
    from robustjax.training.loop import initial_state
    from robustjax.training.objectives import inference_logits_fn
    from robustjax.training.optimizers import make_optimizer

    run, _ = common.load_model(like)
    config = common.make_config(s, "erm", "cifar10_erm", seed=0)
    state = initial_state(run, make_optimizer(config.optimizer, steps_per_epoch=1, epochs=1))
    return inference_logits_fn(run.model, state.params, state.model_state)


def measure(s: common.Settings, dirs: dict, eps: float) -> tuple[dict, dict]:
    from robustjax import analysis, evaluation

    rows, seed0 = {}, {}
    eps_list = [m * eps for m in EPS_MULTIPLES]
    radii = np.linspace(0.0, 3.0 * eps, 13)
    for (name, seed), workdir in sorted(dirs.items(), key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]))):
        run, logits_fn = common.load_model(workdir)
        x, y = (jnp.asarray(a) for a in common.test_points(run, s.examples))
        delta = pga(logits_fn, x, y, eps, seed)
        al = analysis.perturbation_alignment(logits_fn, x, delta, key=jax.random.PRNGKey(100 + seed))
        xc, yc = common.test_points(run, max(s.examples, min(500, 5 * s.examples)))
        curve = evaluation.accuracy_vs_eps(logits_fn, (xc, yc), eps=eps_list, key=seed, attack="pgd", norm=2,
                                           steps=10, step_size_factor=0.2, random_start=True, progress=False)
        row = {"name": name, "seed": seed, "clean": curve.clean_accuracy,
               "pga_accuracy": dict(zip([f"{e:.4g}" for e in eps_list], curve.accuracy.tolist())),
               "accuracy_at_train_eps": float(curve.accuracy[EPS_MULTIPLES.index(1.0)]),
               "cos_v1": float(al.cosines[:, 0].mean()), "random_cos_v1": float(al.random_cosines[:, 0].mean()),
               "share_top1": float(al.share.mean()) if al.k == 1 else None,
               "sigma1": float(al.singular_values[:, 0].mean()),
               "sigma_mean": float(al.singular_values.mean()),
               "median_sigma1": float(np.median(al.singular_values[:, 0]))}
        if seed == s.seeds[0]:
            features = common.penultimate_fn(workdir)
            noise = jax.random.normal(jax.random.PRNGKey(7), x.shape, x.dtype)
            key = jax.random.PRNGKey(3)
            lin = {d: analysis.local_linearity(features, x, v, radii) for d, v in (("adversarial", delta), ("random", noise))}
            sig = {d: analysis.sigma_along_path(logits_fn, x, v, radii, iters=20, key=key)
                   for d, v in (("adversarial", delta), ("random", noise))}
            by_eps = {}
            for e in eps_list:
                d_e = pga(logits_fn, x, y, e, seed)
                by_eps[e] = analysis.perturbation_alignment(logits_fn, x, d_e, k=1, key=jax.random.PRNGKey(5))
            at = int(np.argmin(np.abs(radii - eps)))
            row["linearity_deviation_at_eps"] = {d: float(np.median(r.deviation[:, at])) for d, r in lin.items()}
            row["relative_linearity_deviation_at_eps"] = {
                d: float(np.median(r.relative_deviation[:, at])) for d, r in lin.items()}
            row["sigma_max_at_eps"] = {d: float(np.median(r.sigma[:, at])) for d, r in sig.items()}
            row["cos_v1_by_eps"] = {f"{e:.4g}": float(r.cosines[:, 0].mean()) for e, r in by_eps.items()}
            seed0[name] = {"alignment": al, "linearity": lin, "sigma": sig, "by_eps": by_eps, "curve": curve}
        rows[f"{name}-s{seed}"] = row
        print(f"[roth2019] {name} s{seed}: clean {row['clean']:.3f}, PGA acc at ε {row['accuracy_at_train_eps']:.3f}, "
              f"|cos v1| {row['cos_v1']:.3f} (random {row['random_cos_v1']:.4f}), σ1 {row['sigma1']:.2f}", flush=True)
    # Fig. 1's random network
    _, first = next(iter(sorted(dirs.items())))
    rnd = random_network(s, first)
    run, _ = common.load_model(first)
    x, y = (jnp.asarray(a) for a in common.test_points(run, s.examples))
    seed0["random"] = {"alignment": analysis.perturbation_alignment(
        rnd, x, pga(rnd, x, y, eps, 0), key=jax.random.PRNGKey(100))}
    return rows, seed0


def figures(s: common.Settings, seed0: dict, eps: float) -> list[str]:
    from robustjax import analysis
    from robustjax.evaluation.curves import plot_accuracy_curves

    out = [common.save_figure(s, analysis.plot_perturbation_alignment(
        {LABELS[n]: r["alignment"] for n, r in seed0.items()},
        title=f"Roth 2019 Fig. 1: ℓ2-PGA (ε = {eps:.3g}) perturbations vs Jacobian singular vectors"), "roth_fig1_alignment")]
    out.append(common.save_figure(s, analysis.plot_local_linearity(
        {f"{LABELS[n]}, {d}": r for n in METHODS if n in seed0 for d, r in seed0[n]["linearity"].items()},
        train_eps=eps, title="Roth 2019 Fig. 2 left: deviation from linearity of the penultimate layer φ^(L−1)"), "roth_fig2_linearity"))
    out.append(common.save_figure(s, analysis.plot_sigma_along_path(
        {f"{LABELS[n]}, {d}": r for n in METHODS if n in seed0 for d, r in seed0[n]["sigma"].items()},
        train_eps=eps, title="Roth 2019 Fig. 2 right: σ_max along the path"), "roth_fig2_sigma"))
    out.append(common.save_figure(s, analysis.plot_alignment_vs_eps(
        {LABELS[n]: seed0[n]["by_eps"] for n in METHODS if n in seed0}, train_eps=eps,
        title="Roth 2019 Fig. 3 right: alignment with v₁ vs ε"), "roth_fig3_alignment_vs_eps"))
    s.figures.mkdir(parents=True, exist_ok=True)
    path = s.figures / "roth_fig3_accuracy.png"
    plot_accuracy_curves({LABELS[n]: seed0[n]["curve"] for n in METHODS if n in seed0}, str(path),
                         title=f"Roth 2019 Fig. 3 left: ℓ2-PGA-10 accuracy (training ε = {eps:.3g})")
    out.append(str(path.relative_to(s.workdir)))
    return out


def claims(rows: dict, figs: list[str], eps: float) -> list[dict]:
    by = lambda n, k: [r[k] for r in rows.values() if r["name"] == n]  # noqa: E731
    st = lambda n, k: common.spread(by(n, k))  # noqa: E731
    f = {n: st(n, "cos_v1") for n in METHODS}
    rand = max(max(by(n, "random_cos_v1")) for n in METHODS)
    v_above = common.all_hold([common.verdict(by(n, "cos_v1"), [10 * rand]) for n in METHODS])
    v_more = common.all_hold([common.verdict(by(n, "cos_v1"), by("erm", "cos_v1")) for n in ("pga_at", "snr")])
    c1 = {"claim": "Roth 2019: ℓ2-PGA perturbations align with the top singular vector far above random, "
                   "more for AT/SNR",
          "paper": "Fig. 1 right, Fig. 3 right: |cos(δ, v₁)| high, decreasing with rank, random ≈ flat; AT ≈ SNR > "
                   "global SNR ≈ ERM",
          "measured": ", ".join(f"{LABELS[n]} {common.fmt(f[n])}" for n in METHODS)
          + f" vs random direction ≤ {rand:.4f} (> 10× random: {v_above}; AT, SNR > ERM: {v_more})",
          "verdict": common.all_hold([v_above, v_more]), "figures": [figs[0], figs[3]]}
    s1 = {n: st(n, "sigma1") for n in METHODS}
    v_damp = common.all_hold([common.verdict(by("erm", "sigma1"), by(n, "sigma1")) for n in ("pga_at", "snr")])
    g_ratio = s1["global_snr"]["mean"] / s1["erm"]["mean"]
    damp_ratio = max(s1["pga_at"]["mean"], s1["snr"]["mean"]) / s1["erm"]["mean"]
    v_global = common.HOLDS if g_ratio > damp_ratio + 0.5 * (1 - damp_ratio) else common.FAILS
    lin = {n: next(r for r in rows.values() if r["name"] == n and "linearity_deviation_at_eps" in r) for n in METHODS}
    dev = {n: lin[n]["linearity_deviation_at_eps"]["adversarial"] for n in METHODS}
    rel = {n: lin[n]["relative_linearity_deviation_at_eps"]["adversarial"] for n in METHODS}
    sig = {n: lin[n]["sigma_max_at_eps"]["adversarial"] for n in METHODS}
    # relative deviation (÷ ‖φ(x+z) − φ(x)‖): free of each network's feature scale
    v_lin = common.all_hold([common.verdict([rel["erm"]], [rel[n]]) for n in ("pga_at", "snr")]
                            + [common.verdict([sig["erm"]], [sig[n]]) for n in ("pga_at", "snr")])
    c2 = {"claim": "Roth 2019: AT and data-dependent SNR damp the Jacobian spectrum and stay more linear along "
                   "adversarial paths; global SNR does not act on the data-dependent spectrum",
          "paper": "Fig. 1 left (AT, SNR spectra damped, global SNR ≈ ERM), Fig. 2 (deviation from linearity and "
                   "σ_max along adversarial paths lower for AT/SNR)",
          "measured": "mean σ₁(J): " + ", ".join(f"{LABELS[n]} {common.fmt(s1[n], 2)}" for n in METHODS)
          + f"; at ‖z‖ = ε along PGA (seed 0, median): deviation from linearity of φ^(L−1), absolute / "
          "relative " + ", ".join(f"{LABELS[n]} {dev[n]:.3g} / {rel[n]:.3f}" for n in METHODS) + "; σ_max " + ", ".join(
              f"{LABELS[n]} {sig[n]:.3g}" for n in METHODS)
          + f" (σ₁ damped: {v_damp}; global SNR σ₁ / ERM {g_ratio:.2f}: {v_global}; linearity: {v_lin})",
          "verdict": common.all_hold([v_damp, v_global, v_lin]), "figures": [figs[0], figs[1], figs[2]]}
    acc = {n: st(n, "accuracy_at_train_eps") for n in METHODS}
    clean = {n: st(n, "clean") for n in METHODS}
    gain_at = acc["pga_at"]["mean"] - acc["erm"]["mean"]
    share = (acc["snr"]["mean"] - acc["erm"]["mean"]) / gain_at if gain_at > 0 else float("nan")
    v_both = common.all_hold([common.verdict(by(n, "accuracy_at_train_eps"), by("erm", "accuracy_at_train_eps"))
                              for n in ("pga_at", "snr")])
    v_similar = common.HOLDS if share >= 0.5 else (common.WEAK if share > 0 else common.FAILS)
    c3 = {"claim": "Roth 2019: SNR and ℓ2-PGA AT reach similar robustness",
          "paper": "Fig. 3 left: SNR between ERM and AT, close to AT; global SNR ≈ ERM (Table 1 clean: AT 83.6 %, "
                   "SNR 84.6 %, global 80.4 %, ERM 93.5 %)",
          "measured": f"ℓ2-PGA-10 accuracy at ε = {eps:.3g}: " + ", ".join(
              f"{LABELS[n]} {common.fmt(acc[n])}" for n in METHODS) + "; clean " + ", ".join(
              f"{LABELS[n]} {common.fmt(clean[n])}" for n in METHODS)
          + f" (AT, SNR > ERM: {v_both}; SNR recovers {share:.0%} of AT's gain)",
          "verdict": common.all_hold([v_both, v_similar]), "figures": [figs[4]]}
    return [c1, c2, c3]


def main(argv=None):
    p = common.parser("roth2019", __doc__.splitlines()[0], default_examples=200, default_seeds=3)
    s = common.settings(p.parse_args(argv))
    started = time.perf_counter()
    eps = training_eps(s)
    print(f"[roth2019] training/attack ε = {eps:.4f} (ℓ2, pixels)", flush=True)
    runs, dirs = train_all(s, eps)
    rows, seed0 = measure(s, dirs, eps)
    figs = figures(s, seed0, eps)
    cl = claims(rows, figs, eps)
    doc = common.write_results(s, cl, {"eps": eps, "eps_multiples": EPS_MULTIPLES, "models": rows}, runs,
                               started=started)
    for c in cl:
        print(f"[roth2019] {c['verdict']}: {c['claim']}", flush=True)
    return doc


if __name__ == "__main__":
    main()
