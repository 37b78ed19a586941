"""Reports of an evaluation: a text table, JSON, Markdown and a PNG plot of accuracy vs ε.

JSON follows RobustBench's model-info conventions where they apply: ``clean_acc`` and robust
accuracies are percentages written as two-decimal strings (``"44.80"``), ``eps`` is written as in
the papers (``"8/255"``), ``threat_model`` is ``"Linf"``/``"L2"``. :func:`write_reports` writes
``robustness.json``, ``robustness.md`` and ``robustness.png`` to temporary names first and renames
them at the end (JSON last), so a directory never holds a partial report that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import numpy as np

FORMAT = "robustjax.robustness/1"
REPORT_FILES = ("robustness.json", "robustness.md", "robustness.png")


def pct(a: float | None) -> str | None:
    """RobustBench-style accuracy: a percentage with two decimals, as a string."""
    return None if a is None else f"{100.0 * float(a):.2f}"


def _num(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def _jsonable(v: Any) -> Any:
    """Plain JSON values; NaN/inf become null (strict JSON has no NaN)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, type(None), bool, np.bool_, int, float, np.integer, np.floating)):
        return _num(v)
    return repr(v)


def _params_json(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, (str, bool, int, float, type(None))):
            out[k] = _num(v)
        else:
            out[k] = repr(v)
    return out


def report_to_dict(report) -> dict[str, Any]:
    """JSON-ready summary of a :class:`RobustnessReport` (no per-example arrays)."""
    rows = report.rows()
    robust = report.robust_accuracy()
    groups = report.threat_models()
    threat_models = []
    for threat, members in groups.items():
        first = members[0]
        lp = threat.startswith(("Linf ", "L2 "))
        entry = {
            "threat": threat,
            "threat_model": threat.split(" ")[0] if lp else None,
            "eps": first.eps_label if not lp else threat.split("eps=")[1],
            "eps_value": _num(first.eps),
            "robust_acc": pct(robust[threat]),
            "attacks": {r.attack: pct(np.mean(r.robust_mask(report.clean_correct))) for r in members},
        }
        threat_models.append(entry)
    attacks = []
    for spec in report.specs:
        spec_rows = [r for r in rows if r["attack"] == spec.name]
        attacks.append({
            "name": spec.name,
            "attack": spec.kind,
            "norm": None if spec.norm is None else ("Linf" if spec.norm == math.inf else "L2"),
            "strength_name": spec.strength_name,
            "eps_scale": spec.eps_scale,
            "clip": None if spec.clip is None else list(spec.clip),
            "params": _params_json(dict(spec.params)),
            "results": [
                {
                    "eps": r["eps"],
                    "eps_value": _num(r["eps_value"]),
                    "threat": r["threat"],
                    "robust_acc": pct(r["accuracy"]),
                    "conditional_acc": pct(r["conditional_accuracy"]),
                    "success_rate": pct(r["success_rate"]),
                    "mean_perturbation_norm": _num(r["mean_perturbation_norm"]),
                    "mean_margin_before": _num(r["mean_margin_before"]),
                    "mean_margin_after": _num(r["mean_margin_after"]),
                    "evaluated": r["evaluated"],
                    **{k: _num(r[k]) for k in ("rho", "rho_space", "fooled") if k in r},
                }
                for r in spec_rows
            ],
        })
    meta = _jsonable(report.meta)
    d = {
        "format": FORMAT,
        "name": report.meta.get("name", report.suite),
        "suite": report.suite,
        "n_examples": report.n,
        "clean_acc": pct(report.clean_accuracy),
        "mean_max_prob": _num(report.mean_max_prob),
    }
    lp_groups = [t for t in threat_models if t["threat_model"]]
    if lp_groups:
        # RobustBench's single-threat-model fields, for the first ℓp threat model of the suite.
        main = lp_groups[0]
        d.update({"threat_model": main["threat_model"], "eps": main["eps"],
                  "robust_acc": main["robust_acc"]})
    d.update({
        "threat_models": threat_models,
        "attacks": attacks,
        "warnings": [w.to_dict() for w in report.warnings],
        "meta": meta,
    })
    return d


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


def _table_rows(report) -> tuple[list[str], list[list[str]]]:
    header = ["attack", "threat", "strength", "acc %", "acc of clean-correct %", "success %",
              "mean ‖δ‖", "margin before", "margin after"]
    body = []
    for r in report.rows():
        strength = f"{r['strength_name']}={r['eps']}"
        extra = _rho_text(r, report.meta.get("rho_space"))
        body.append([
            r["attack"] + extra,
            r["norm"] or "-",
            strength,
            pct(r["accuracy"]),
            pct(r["conditional_accuracy"]),
            pct(r["success_rate"]),
            _fmt(r["mean_perturbation_norm"]),
            _fmt(r["mean_margin_before"]),
            _fmt(r["mean_margin_after"]),
        ])
    return header, body


def _rho_text(r: dict, space: str | None) -> str:
    """DeepFool's ρ in pixels, in the paper's space and the fooled fraction, for tables."""
    if r.get("rho") is None:
        return ""
    parts = [f"rho={r['rho']:.4g}"]
    if r.get("rho_space") is not None:
        parts.append(f"rho[{space}]={r['rho_space']:.4g}")
    if r.get("fooled") is not None:
        parts.append(f"fooled {pct(r['fooled'])}%")
    return " (" + ", ".join(parts) + ")"


def _rho_label(r, space: str | None) -> str:
    """Bar label of a minimal-perturbation attack: ρ (pixels, the paper's space), fooled."""
    e = r.extras
    if e.get("rho") is None:
        return r.attack
    out = f"{r.attack}\nρ={e['rho']:.3g}"
    if e.get("rho_space") is not None:
        out += f", ρ[{space}]={e['rho_space']:.3g}"
    if e.get("fooled") is not None:
        out += f"\nfooled {100 * e['fooled']:.1f}%"
    return out


def format_table(report) -> str:
    """Fixed-width text: clean accuracy, one row per (attack, strength), the worst case per
    threat model, then the gradient-masking warnings."""
    header, body = _table_rows(report)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
              for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [
        f"robustness [{report.suite}] on {report.n} examples: clean accuracy "
        f"{pct(report.clean_accuracy)}%, mean max-probability {pct(report.mean_max_prob)}%",
        "(acc: correct on clean and attacked input; acc of clean-correct: the same among the "
        "clean-correct points, Wen et al. 2020 App. D.2)",
        line(header),
        line(["-" * w for w in widths]),
    ]
    out += [line(row) for row in body]
    out.append("")
    out.append("robust accuracy: pointwise worst case over the attacks of each threat model "
               "(an l_p ball includes the attacks in its smaller balls):")
    robust = report.robust_accuracy()
    tw = max(len(t) for t in robust) if robust else 0
    for t, a in robust.items():
        names = list(dict.fromkeys(r.attack for r in report.members(t)))
        out.append(f"  {t.ljust(tw)}  {pct(a)}%  (worst of: {', '.join(names)})")
    if report.meta.get("skip_broken"):
        out.append("  (skip_broken: per-attack rows are cumulative worst cases, in evaluation order: "
                   "l_p attacks by (norm, eps), each in suite order, then the others)")
    out.append("")
    if report.warnings:
        out.append(f"gradient-masking warnings ({len(report.warnings)}):")
        for w in report.warnings:
            out.append(f"  [{w.name}] {w.message}")
    else:
        out.append("gradient-masking checks: no warnings")
    return "\n".join(out)


def report_to_markdown(report) -> str:
    """The table and warnings as Markdown."""
    header, body = _table_rows(report)
    md = [
        f"# Robustness report: {report.meta.get('name', report.suite)}",
        "",
        f"- suite: `{report.suite}`",
        f"- examples: {report.n}",
        f"- clean accuracy: **{pct(report.clean_accuracy)}%**",
        f"- mean max softmax probability: {pct(report.mean_max_prob)}%",
    ]
    if report.meta.get("mean_l2_norm") is not None:
        md.append(f"- E‖x‖₂ (scale of relative ε): {report.meta['mean_l2_norm']:.6g}")
    md += ["", "## Worst case per threat model", "", "| threat model | robust accuracy % | attacks |",
           "|---|---:|---|"]
    for t, a in report.robust_accuracy().items():
        names = ", ".join(dict.fromkeys(r.attack for r in report.members(t)))
        md.append(f"| {t} | {pct(a)} | {names} |")
    md += ["", "## Per attack", "", "| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i >= 3 else "---" for i in range(len(header))) + "|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    if report.meta.get("skip_broken"):
        md += ["", "_skip_broken: per-attack rows are cumulative worst cases, in evaluation order "
               "(ℓp attacks by (norm, ε), each in suite order, then the others)._"]
    md += ["", "## Gradient-masking checks", ""]
    if report.warnings:
        for w in report.warnings:
            md.append(f"- **{w.name}**: {w.message}  \n  {w.explanation}")
    else:
        md.append("No warnings.")
    md.append("")
    return "\n".join(md)


def _axis_groups(report) -> tuple[dict[str, list], list]:
    """Numeric strength axes (label -> results) and categorical results (bar panel)."""
    axes: dict[str, list] = {}
    categorical = []
    for r in report.results:
        if r.eps is None or r.kind == "spatial":
            categorical.append(r)
            continue
        if r.norm is not None and r.kind not in ("wrm",):
            label = "ε (ℓ∞)" if r.norm == math.inf else "ε (ℓ2)"
        else:
            label = {"gamma": "γ (WRM)", "sigma": "σ (Gaussian noise)"}.get(
                r.strength_name, f"ε ({r.kind})")
        axes.setdefault(label, []).append(r)
    return axes, categorical


def plot_report(report, path: str) -> None:
    """PNG: accuracy (%) vs strength, one panel per axis (ℓ∞ ε, ℓ2 ε, σ, ...), one line per
    attack, the pointwise worst case of each ℓp threat model in black, clean accuracy dotted;
    attacks without a numeric strength (spatial levels, DeepFool) as a bar panel."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from robustjax.evaluation.suites import format_eps

    axes_groups, categorical = _axis_groups(report)
    panels = list(axes_groups) + (["categorical"] if categorical else [])
    if not panels:
        panels = ["categorical"]
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.3 * nrows + 0.4),
                            squeeze=False)
    for extra in axs.flat[len(panels):]:
        extra.set_visible(False)
    cc = report.clean_correct
    clean = 100 * report.clean_accuracy
    robust = report.robust_accuracy()
    for ax, panel in zip(axs.flat, panels):
        if panel == "categorical":
            labels = [f"{r.attack}\n{r.eps_label}" if r.eps_label != "-" else
                      _rho_label(r, report.meta.get("rho_space")) for r in categorical]
            vals = [100 * float(np.mean(r.robust_mask(cc))) for r in categorical]
            ax.bar(range(len(vals)), vals, color="tab:blue")
            ax.set_xticks(range(len(vals)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.axhline(clean, color="gray", ls=":", label=f"clean ({clean:.1f}%)")
            ax.set_xlabel("attack / strength")
            ax.set_title("attacks without an ε axis")
        else:
            rs = axes_groups[panel]
            names = list(dict.fromkeys(r.attack for r in rs))
            for name in names:
                pts = sorted((r.eps, 100 * float(np.mean(r.robust_mask(cc))))
                             for r in rs if r.attack == name)
                if pts and pts[0][0] > 0 and rs[0].norm is not None:
                    pts.insert(0, (0.0, clean))  # ε = 0 is the clean input
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
            threats = sorted({(r.eps, r.threat) for r in rs if r.threat in robust
                              and r.threat.startswith(("Linf ", "L2 "))})
            if threats and len(names) > 1:
                ax.plot([e for e, _ in threats], [100 * robust[t] for _, t in threats],
                        color="black", lw=2.2, ls="--", marker="s", label="worst case (all attacks)")
            ax.axhline(clean, color="gray", ls=":", label=f"clean ({clean:.1f}%)")
            ticks = sorted({r.eps for r in rs})
            if ticks and all(format_eps(t).endswith("/255") for t in ticks) and len(ticks) <= 8:
                ax.set_xticks([0.0] + ticks)
                ax.set_xticklabels(["0"] + [format_eps(t) for t in ticks])
            ax.set_xlabel(panel)
            ax.set_title(f"accuracy vs {panel}")
            ax.set_xlim(left=0)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{report.meta.get('name', report.suite)}: robustness on {report.n} examples "
        f"(clean {clean:.2f}%)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_reports(report, out_dir: str) -> list[str]:
    """Write ``robustness.json``, ``robustness.md`` and ``robustness.png`` into ``out_dir``.

    Each file is written under a temporary name in ``out_dir`` and renamed (``os.replace``,
    atomic on POSIX) only after all three were written, JSON last; on any error the temporaries
    are removed and earlier reports in ``out_dir`` stay untouched. Returns the three paths
    (JSON, Markdown, PNG).
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ValueError(f"out_dir must be a path; got {out_dir!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    temps: dict[str, str] = {}
    try:
        for fname in REPORT_FILES:
            fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=out_dir)
            os.close(fd)
            temps[fname] = tmp
            os.chmod(tmp, 0o666 & ~_umask())
        with open(temps["robustness.json"], "w", encoding="utf-8") as f:
            json.dump(report_to_dict(report), f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        with open(temps["robustness.md"], "w", encoding="utf-8") as f:
            f.write(report_to_markdown(report))
            f.flush()
            os.fsync(f.fileno())
        plot_report(report, temps["robustness.png"])
        for fname in ("robustness.png", "robustness.md", "robustness.json"):
            os.replace(temps.pop(fname), os.path.join(out_dir, fname))
        return [os.path.join(out_dir, fname) for fname in REPORT_FILES]
    finally:
        for tmp in temps.values():
            try:
                os.remove(tmp)
            except OSError:
                pass
