"""SOAR (Ma, Faghri & Farahmand 2020): the paper's claims re-measured.

1. §2, exact: on over-parameterized linear regression, gradient descent reaches zero loss but
   keeps the random initial weights of the unused coordinates, which an ℓ∞ adversary exploits
   (loss ``½ε²‖w_{2:d}(0)‖₁² ≈ ε²d²σ²/π``); the first-order Taylor estimate of the adversarial
   loss is 0 there, the second-order one is exact, and training with the second-order objective
   is adversarial training (same iterates) while the first-order one leaves the model attackable.
2. Table 1: SOAR (fine-tuned from the standard model, PGD1 evaluation point) raises PGD-20
   accuracy over the standard model with a smaller clean-accuracy drop than PGD adversarial
   training.
3. Table 5 / App. B: SOAR with zero (or random) initialization of the evaluation point is ≈ 100 %
   confident on test points (a gradient-masking sign, with poor black-box accuracy in Table 4);
   PGD1 initialization avoids it.

CPU default (mnist-5k, ℓ∞ ε = 0.1): ERM 15 epochs, PGD-10 AT and SOAR (λ = 0.5, α = ε) 5 epochs,
3 seeds for ERM / PGD AT / SOAR-PGD1 and seed 0 for SOAR zero/random init.

    python -m experiments.soar2020 --workdir runs/soar2020 [--quick] [--resume] [--config-set paper]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments import soar_regression as reg

EPS = 0.1  # ℓ∞ radius on mnist-5k (the paper's 8/255 is for CIFAR-10)
INITS = ("pgd1", "zero", "random")
#: smallest difference of mean max. probability counted as a confidence blow-up (Table 5)
CONFIDENCE_MARGIN = 0.01


# ------------------------------------------------------------------------------------------------
# §2: linear regression, exact
# ------------------------------------------------------------------------------------------------

def section2(s: common.Settings) -> tuple[dict, dict, list]:
    """Run the §2 measurements in float64; returns (claim row, measurements, figure paths)."""
    from robustjax.data import overparameterized_linear_regression

    n, d, sigma, eps = 64, (50 if s.quick else 200), 0.1, 0.1
    steps = 300 if s.quick else 3000
    with jax.enable_x64(True):
        problem = overparameterized_linear_regression(jax.random.PRNGKey(0), n=n, d=d)
        x, y = jnp.asarray(problem.x, jnp.float64), jnp.asarray(problem.y, jnp.float64)
        w0 = sigma * jax.random.normal(jax.random.PRNGKey(1), (d,), jnp.float64)
        lr = 0.5 / float(jnp.mean(x[:, 0] ** 2))
        # (a) GD on the squared loss ends at w̄ = (w*_1, w_2(0), …): zero loss, random free weights
        w_bar, _, _ = reg.gradient_descent(reg.objective("erm", eps=eps), w0, x, y, steps=steps, lr=lr)
        closed = jnp.concatenate([jnp.ones((1,)), w0[1:]])
        gd_error = float(jnp.max(jnp.abs(w_bar - closed)))
        library_limit_error = float(np.max(np.abs(np.asarray(w_bar) - problem.gradient_descent_limit(np.asarray(w0)))))
        train_loss = float(jnp.mean(reg.squared_loss_fn(w_bar, y)(x)))
        # (b) at w̄: the attack's loss, its closed form, first- and second-order estimates
        delta = reg.attack(w_bar, x, y, eps=eps)
        est = {k: np.asarray(v) for k, v in reg.taylor_estimates(w_bar, x, y, delta).items()}
        l1 = float(jnp.sum(jnp.abs(w_bar[1:])))
        closed_loss = 0.5 * eps**2 * l1**2
        rel = lambda a: float(np.max(np.abs(a - est["exact"])) / closed_loss)  # noqa: E731
        # (c) eq. 2 at a random w (paper's fixed direction Δx = ε sign(w_{2:d}))
        w_rand = w0 + 0.3 * jax.random.normal(jax.random.PRNGKey(2), (d,), jnp.float64)
        eq2 = reg.eq2_terms(w_rand, x, y, eps=eps)
        # (d) expected attack loss over w(0) vs d (Monte Carlo, NumPy) against the closed form
        rng = np.random.default_rng(3)
        dims = [10, 30, 100, 300, 1000]
        draws = 500
        mc = []
        for dd in dims:
            w = rng.normal(0.0, sigma, (draws, dd))
            vals = 0.5 * eps**2 * np.sum(np.abs(w[:, 1:]), axis=1) ** 2
            mc.append((float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(draws))))
        expected = [reg.expected_attack_loss(dd, sigma, eps) for dd in dims]
        mc_z = max(abs(m - e) / se for (m, se), e in zip(mc, expected))
        # (e) training with each objective, from w(0) and fine-tuning from w̄ (as SOAR fine-tunes
        # a standard model); the second-order and adversarial gradients agree at every iterate
        record = max(1, steps // 100)
        curves, finals = {}, {}
        grad_second = jax.jit(jax.grad(reg.objective("second_order", eps=eps)))
        grad_adv = jax.jit(jax.grad(reg.objective("adversarial", eps=eps)))
        grad_gap = 0.0
        for start, w_start in (("init", w0), ("gd_limit", w_bar)):
            for name in reg.OBJECTIVES:
                # GN's curvature in w_1 is (1 + ε²d‖w‖²)·E[x₁²]: a smaller step keeps GD stable
                step = lr / (1.0 + eps**2 * d * float(jnp.sum(w_start**2))) if name == "gradient_norm" else lr
                w_end, ws, at = reg.gradient_descent(reg.objective(name, eps=eps), w_start, x, y, steps=steps,
                                                     lr=step, record_every=record)
                adv = jax.vmap(lambda w: jnp.mean(reg.worst_case_loss(w, x, y, eps=eps)))(ws)
                curves[(start, name)] = (at, np.asarray(adv))
                finals[f"{name}_from_{start}"] = {
                    "adversarial_loss": float(adv[-1]), "clean_loss": float(jnp.mean(reg.squared_loss_fn(w_end, y)(x))),
                    "free_l1": float(jnp.sum(jnp.abs(w_end[1:]))), "w1": float(w_end[0])}
                gaps = jax.vmap(lambda w: jnp.max(jnp.abs(grad_second(w, x, y) - grad_adv(w, x, y))))(ws)
                grad_gap = max(grad_gap, float(jnp.max(gaps)))
        gn_grad_at_w_bar = float(jnp.max(jnp.abs(jax.grad(reg.objective("gradient_norm", eps=eps))(w_bar, x, y))))
    meas = {
        "n": n, "d": d, "sigma": sigma, "eps": eps, "gd_steps": steps, "lr": lr,
        "gd_limit_max_abs_error": gd_error, "gd_limit_vs_library_max_abs_error": library_limit_error,
        "train_loss_at_gd_limit": train_loss, "free_l1_at_gd_limit": l1,
        "attack_loss_closed_form": closed_loss, "attack_loss_measured_mean": float(est["exact"].mean()),
        "first_order_estimate_mean": float(est["first_order"].mean()),
        "second_order_estimate_mean": float(est["second_order"].mean()),
        "first_order_relative_error": rel(est["first_order"]),
        "second_order_relative_error": rel(est["second_order"]),
        "eq2": eq2, "monte_carlo": {"d": dims, "draws": draws, "mean_and_se": mc, "closed_form": expected,
                                    "max_z": mc_z},
        "training": finals, "second_order_vs_adversarial_max_gradient_difference": grad_gap,
        "gradient_norm_objective_gradient_at_gd_limit": gn_grad_at_w_bar,
    }
    exact = (gd_error < 1e-10 and meas["second_order_relative_error"] < 1e-10 and grad_gap < 1e-10
             and abs(eq2["measured"] - eq2["expansion_with_half"]) < 1e-10 * max(1.0, eq2["measured"]))
    first_fails = meas["first_order_relative_error"] > 0.99 and gn_grad_at_w_bar == 0.0 and \
        finals["gradient_norm_from_gd_limit"]["adversarial_loss"] > 0.99 * closed_loss
    figures = [_plot_section2(s, curves, dims, mc, expected, eps=eps, sigma=sigma)]
    claim = {
        "claim": "SOAR §2: on over-parameterized linear regression the second-order expansion is the "
                 "adversarial objective, the first-order one misses it",
        "paper": "§2: GD solution w̄ has zero loss, attack loss ½ε²‖w̄_{2:d}‖₁² ≈ ε²d²σ²/π",
        "measured": (f"d={d}: GD limit error {gd_error:.1e}; attack loss {closed_loss:.4f} (closed form) vs "
                     f"{meas['attack_loss_measured_mean']:.4f}; 1st-order estimate "
                     f"{meas['first_order_estimate_mean']:.1e} (rel. error {meas['first_order_relative_error']:.2f}; GN "
                     f"gradient at w̄ {gn_grad_at_w_bar:.0f}), 2nd-order rel. error "
                     f"{meas['second_order_relative_error']:.1e}; 2nd-order and adversarial gradients agree to "
                     f"{grad_gap:.0e}; fine-tuning w̄ for {steps} GD steps ends at attack loss GN "
                     f"{finals['gradient_norm_from_gd_limit']['adversarial_loss']:.3f}, max of the linearization "
                     f"{finals['first_order_from_gd_limit']['adversarial_loss']:.1e} (its kink at r = 0 makes r "
                     f"oscillate), 2nd-order "
                     f"{finals['second_order_from_gd_limit']['adversarial_loss']:.1e} (from w(0): ERM "
                     f"{finals['erm_from_init']['adversarial_loss']:.3f}, GN "
                     f"{finals['gradient_norm_from_init']['adversarial_loss']:.3f}, max of the linearization "
                     f"{finals['first_order_from_init']['adversarial_loss']:.1e}); Monte Carlo vs closed form "
                     f"max |z| {mc_z:.1f} (d = 10…1000). Eq. 2 holds with ½ε² (the paper prints ε²)"),
        "verdict": common.HOLDS if exact and first_fails else common.FAILS,
        "figures": figures,
    }
    return claim, meas, figures


def _plot_section2(s, curves, dims, mc, expected, *, eps, sigma) -> str:
    from robustjax.analysis.plotting import new_figure

    fig, axes = new_figure(1, 3, width=4.6, height=4.0)
    labels = {"erm": "ERM (GD on ½r²)", "gradient_norm": "GN: ℓ + ½ε²d‖∇ₓℓ‖²",
              "first_order": "1st order: ℓ + ⟨∇ₓℓ, Δ⟩",
              "second_order": "2nd order: + ½ΔᵀHΔ", "adversarial": "adversarial training"}
    styles = {"erm": ("-", 2), "gradient_norm": ("-.", 2), "first_order": ("--", 2), "second_order": ("-", 2), "adversarial": (":", 3)}
    for ax, start, title in ((axes[0, 0], "init", "training from w(0) ~ N(0, σ²I)"),
                             (axes[0, 1], "gd_limit", "fine-tuning the GD solution w̄")):
        for name in labels:
            at, adv = curves[(start, name)]
            ax.plot(at, np.maximum(adv, 1e-16), styles[name][0], lw=styles[name][1], label=labels[name])
        ax.set_yscale("log")
        ax.set_xlabel("gradient-descent step")
        ax.set_ylabel(f"worst-case loss, ℓ∞ ball ε = {eps} on x₂…x_d")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    b = axes[0, 2]
    m = np.array([v[0] for v in mc])
    se = np.array([v[1] for v in mc])
    b.errorbar(dims, m, yerr=2 * se, fmt="o", label="Monte Carlo at w̄ (±2 s.e.)")
    b.plot(dims, expected, "-", label="½ε²σ²[(d−1) + (d−1)(d−2)·2/π]")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("input dimension d")
    b.set_ylabel("E attack loss at the GD solution w̄")
    b.set_title(f"§2: O(ε²d²σ²), ε = {eps}, σ = {sigma}", fontsize=10)
    b.legend(fontsize=7)
    fig.tight_layout()
    return common.save_figure(s, fig, "soar_section2_linear_regression")


# ------------------------------------------------------------------------------------------------
# Tables 1 and 5: trained networks
# ------------------------------------------------------------------------------------------------

def train_all(s: common.Settings):
    runs, dirs = [], {}
    for seed in s.seeds:
        erm = common.make_config(s, "erm", "cifar10_erm", seed=seed)
        runs.append(common.train(s, "erm", erm, seed=seed))
        dirs[("erm", seed)] = common.run_dir(s, "erm", seed)
        pgd = common.make_config(s, "adversarial_pgd_linf", "cifar10_adv7", seed=seed,
                                 cpu_overrides=("epochs=5", f"method_kwargs.eps={EPS}",
                                                f"method_kwargs.step_size={2.5 * EPS / 10}"))
        runs.append(common.train(s, "pgd_at", pgd, seed=seed))
        dirs[("pgd_at", seed)] = common.run_dir(s, "pgd_at", seed)
        for init in INITS if seed == s.seeds[0] else INITS[:1]:
            cfg = common.make_config(s, "soar", "cifar10_soar", seed=seed, cpu_overrides=("epochs=5",),
                                     overrides=(f"init_from={str(dirs[('erm', seed)])!r}",
                                                f"method_kwargs.init={init!r}"))
            runs.append(common.train(s, f"soar_{init}", cfg, seed=seed))
            dirs[(f"soar_{init}", seed)] = common.run_dir(s, f"soar_{init}", seed)
    return runs, dirs


def measure(s: common.Settings, dirs: dict) -> dict:
    from robustjax import analysis, evaluation

    eps = EPS if s.config_set == "cpu" or s.quick else 8 / 255
    specs = [evaluation.AttackSpec("FGSM", "fgsm", eps=(eps,), norm=np.inf),
             common.linf_pgd("PGD-20", (eps,), steps=20)]
    out = {}
    for (name, seed), workdir in sorted(dirs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        run, logits_fn = common.load_model(workdir)
        x, y = common.test_points(run, s.examples)
        row = common.robust_accuracies(logits_fn, x, y, specs, seed=seed)
        conf = analysis.confidence_at_points(logits_fn, jnp.asarray(x), jnp.asarray(y), eps=eps,
                                             key=jax.random.PRNGKey(seed))
        row["confidence"] = conf.summary()["mean_max_probability"]
        # Table 4: black-box PGD-20 transferred from an independently trained ERM model
        source_seed = s.seeds[(s.seeds.index(seed) + 1) % len(s.seeds)]
        if name != "erm" and len(s.seeds) > 1:
            _, source_fn = common.load_model(dirs[("erm", source_seed)])
            tm = evaluation.transfer_matrix({name: logits_fn}, (x, y), specs[1], key=seed,
                                            sources={f"erm-s{source_seed}": source_fn}, progress=False)
            row["transfer_pgd20_from_erm"] = float(tm.accuracy[0, 0])
        out[f"{name}-s{seed}"] = row | {"name": name, "seed": seed, "confidence_result": conf}
        print(f"[soar2020] {name} seed {seed}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return out


def claims_of_training(s, rows: dict, pgd_key: str) -> tuple[list, list]:
    from robustjax.analysis import plot_confidence

    by = lambda name, key: [r[key] for r in rows.values() if r["name"] == name]  # noqa: E731
    clean = {n: by(n, "clean") for n in ("erm", "pgd_at", "soar_pgd1")}
    pgd = {n: by(n, pgd_key) for n in ("erm", "pgd_at", "soar_pgd1")}
    drop_soar = [e - c for e, c in zip(clean["erm"], clean["soar_pgd1"])]
    drop_pgd = [e - c for e, c in zip(clean["erm"], clean["pgd_at"])]
    v_robust = common.verdict(pgd["soar_pgd1"], pgd["erm"])
    v_drop = common.verdict(drop_pgd, drop_soar)
    st = {n: common.spread(v) for n, v in pgd.items()}
    cl = {n: common.spread(v) for n, v in clean.items()}
    fig = plot_confidence({r["name"]: r["confidence_result"] for r in rows.values() if r["seed"] == s.seeds[0]})
    figs = [common.save_figure(s, fig, "soar_table5_confidence")]
    conf = {n: [r["confidence"]["clean"] for r in rows.values() if r["name"] == n]
            for n in ("erm", "pgd_at", "soar_pgd1", "soar_zero", "soar_random")}
    # a blow-up is a difference of confidence, not any difference: the paper's is 6 points of
    # probability (99.6 vs 93.9 %); ask for at least 1 point
    v_conf = common.all_hold([common.verdict(conf["soar_zero"], conf["soar_pgd1"], margin=CONFIDENCE_MARGIN),
                              common.verdict(conf["soar_random"], conf["soar_pgd1"], margin=CONFIDENCE_MARGIN)])
    transfer = {n: [r.get("transfer_pgd20_from_erm") for r in rows.values() if r["name"] == n]
                for n in ("soar_pgd1", "soar_zero", "soar_random")}
    t_txt = "" if not transfer["soar_zero"] or transfer["soar_zero"][0] is None else (
        "; black-box PGD-20 from another ERM seed: " + ", ".join(
            f"{n} {np.mean(v):.3f}" for n, v in transfer.items()))
    c1 = {"claim": "SOAR 2020: SOAR raises PGD accuracy with a smaller clean drop than PGD AT",
          "paper": "Table 1 (CIFAR-10, ε = 8/255): clean/PGD-20 Standard 86.3/0.4, Adv7 70.7/36.0, SOAR 81.7/32.8",
          "measured": (f"{pgd_key} acc: ERM {common.fmt(st['erm'])}, PGD AT {common.fmt(st['pgd_at'])}, "
                       f"SOAR {common.fmt(st['soar_pgd1'])}; clean: ERM {common.fmt(cl['erm'])}, PGD AT "
                       f"{common.fmt(cl['pgd_at'])}, SOAR {common.fmt(cl['soar_pgd1'])} (SOAR > ERM: {v_robust}; "
                       f"clean drop SOAR < PGD AT: {v_drop})"),
          "verdict": common.all_hold([v_robust, v_drop]), "figures": []}
    c2 = {"claim": "SOAR 2020: PGD1 initialization avoids the confidence blow-up of zero/random initialization",
          "paper": "Table 5: mean max softmax prob. zero 99.63 %, random 99.61 %, PGD1 93.85 % (Standard 94.86 %)",
          "measured": "mean max prob. (clean): " + ", ".join(
              f"{n} {np.mean(v):.4f}" for n, v in conf.items() if v) + t_txt,
          "verdict": v_conf, "figures": figs}
    return [c1, c2], figs


def main(argv=None):
    p = common.parser("soar2020", __doc__.splitlines()[0], default_examples=1000, default_seeds=3)
    p.add_argument("--skip-training", action="store_true", help="only the exact §2 part")
    s = common.settings(p.parse_args(argv))
    started = time.perf_counter()
    claim2, meas2, _ = section2(s)
    print(f"[soar2020] §2: {claim2['verdict']}: {claim2['measured']}", flush=True)
    claims, measurements, runs = [claim2], {"section2": meas2}, []
    if not p.parse_args(argv).skip_training:
        runs, dirs = train_all(s)
        rows = measure(s, dirs)
        eps_label = "0.1" if s.config_set == "cpu" or s.quick else "8/255"
        more, _ = claims_of_training(s, rows, f"PGD-20@{eps_label}")
        claims += more
        measurements["networks"] = {k: {kk: vv for kk, vv in v.items() if kk != "confidence_result"}
                                    for k, v in rows.items()}
    else:
        claims += [{"claim": c, "paper": "", "measured": "", "verdict": common.NOT_MEASURED, "figures": []}
                   for c in ("SOAR 2020: Table 1", "SOAR 2020: Table 5")]
    doc = common.write_results(s, claims, measurements, runs, started=started)
    for c in claims:
        print(f"[soar2020] {c['verdict']}: {c['claim']}", flush=True)
    return doc


if __name__ == "__main__":
    main()
