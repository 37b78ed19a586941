"""The rows of ``python -m benchmarks``: each goal's measured ratio against its target, and the
text, Markdown and header printouts (split from ``benchmarks/run.py``, which measures)."""

from __future__ import annotations

import inspect
import math

from benchmarks import attacks as bench_attacks
from benchmarks import common
from benchmarks import race as bench_race
from benchmarks import reuse as bench_reuse
from benchmarks import soar as bench_soar
from benchmarks import train_step as bench_train

COMPILE_TARGET_S = 10.0


def default_jacobian_method() -> str:
    from robustjax.core.jacobian import jacobian_top_singular

    return inspect.signature(jacobian_top_singular).parameters["method"].default


# ------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------


def _row(section, goal, measured, target, *, op="<=", seconds=None, note="", has_goal=True,
         stretch=None):
    return {"section": section, "goal": goal, "measured": measured, "target": target, "op": op,
            "stretch": stretch, "has_goal": has_goal, "seconds": seconds or {}, "note": note}


def _met(row, quick: bool) -> str:
    m, t = row["measured"], row["target"]
    if m is None or t is None or (isinstance(m, float) and math.isnan(m)):
        return "—"
    ok = m <= t if row["op"] == "<=" else (m < t if row["op"] == "<" else m >= t)
    word = "yes" if ok else "no"
    if row["stretch"] is not None and ok:
        word += " (stretch yes)" if m >= row["stretch"] else " (stretch no)"
    if not row["has_goal"]:
        word = f"({word}, no goal)"
    if quick:
        return "n/a (quick)"
    return word


def build_rows(sections, raw, peer, *, quick, race=None) -> list[dict]:
    rows = []
    f = raw.get("functions", {})
    med = lambda n: f[n]["median_s"]  # noqa: E731
    if "fused" in sections:
        g = med("input_grad")
        for norm, label in (("linf", "ℓ∞"), ("l2", "ℓ2")):
            for style, desc in (("unrolled", "unroll=True"), ("rolled", "unroll=False")):
                n = f"pgd_{norm}_{style}"
                rows.append(_row("fused", f"PGD-10 {label} {style} ({desc}) ÷ 10 × input grad",
                                 med(n) / (10 * g), 1.10,
                                 seconds={"pgd10": med(n), "input_grad": g}))
        method = default_jacobian_method()
        t = med(f"top_singular_{method}")
        u = med("jvp_vjp")
        rows.append(_row("fused", f"jacobian_top_singular 10 iters ({method}) ÷ 10 × (jvp+vjp)",
                         t / (10 * u), 1.15, seconds={"top_singular": t, "jvp_vjp": u}))
        for hvp, count in bench_soar.GRADIENT_EVALUATIONS.items():
            t = med(f"soar_{hvp}")
            rows.append(_row("fused", f"soar_penalty hvp={hvp} ÷ {count} × input grad",
                             t / (count * g), 1.15, seconds={"soar": t, "input_grad": g}))
    if "peers" in sections:
        style = bench_attacks.default_style()
        ok = peer.get("status") == "ok"
        missing_note = ("peer not installed — " + peer.get("hint", "")) if peer.get(
            "status") == "not installed" else f"peer failed: {str(peer.get('error', ''))[-200:]}"
        for norm, label, key in (("linf", "ℓ∞", "pgd10_linf_s"), ("l2", "ℓ2", "pgd10_l2_s")):
            rj = med(f"pgd_{norm}_{style}")
            secs = {"robustjax": rj}
            if ok:
                secs["torch"] = peer[key]
            rows.append(_row("peers", f"torchattacks PGD-10 {label} ÷ robustjax PGD-10 ({style})",
                             peer[key] / rj if ok else None, 1.0, op=">=", stretch=1.5,
                             seconds=secs, note="" if ok else missing_note))
        for key, label, n in (("forward_s", "forward pass", "forward"),
                              ("input_grad_s", "input gradient", "input_grad")):
            rj = med(n)
            secs = {"robustjax": rj}
            if ok:
                secs["torch"] = peer[key]
            rows.append(_row("peers", f"PyTorch {label} ÷ robustjax {label} (reference)",
                             peer[key] / rj if ok else None, None, has_goal=False, seconds=secs,
                             note="no goal; where the attack ratios come from" if ok else missing_note))
        rj = med(f"pgd_linf_{style}")
        py = med("pgd_linf_python")
        rows.append(_row("peers", "Python-loop JAX PGD-10 ℓ∞ ÷ robustjax PGD-10", py / rj, 3.0,
                         op=">=", seconds={"python_loop": py, "robustjax": rj}))
        for spec in bench_race.row_specs(race):
            rows.append(_row("peers", op=">=", **spec))
    if "training" in sections:
        steps = raw["training"]["steps"]
        erm = steps["erm"]["median_s"]
        for k, s in steps.items():
            if k == "erm":
                continue
            target = s["target"] if s["target"] is not None else round(1.1 * s["passes"], 2)
            rows.append(_row("training", f"{s['label']} step ÷ ERM step ({s['passes']:g} passes)",
                             s["ratio_to_erm"], target, has_goal=s["target"] is not None,
                             seconds={"step": s["median_s"], "erm": erm},
                             note="" if s["target"] is not None else "target = 1.1 × passes"))
        for k, target in bench_train.MEMORY_TARGETS.items():
            if k in steps:
                s = steps[k]
                rows.append(_row("training", f"{s['label']} peak memory ÷ ERM's",
                                 s.get("memory_ratio_to_erm"), target,
                                 seconds={}, note=f"{(s['memory_bytes'] or 0) / 2**20:.1f} MiB vs "
                                 f"{(steps['erm']['memory_bytes'] or 0) / 2**20:.1f} MiB (XLA memory analysis)"))
    if "compile" in sections:
        labels = {"pgd_linf_unrolled": "PGD-10 ℓ∞ unrolled", "pgd_linf_rolled": "PGD-10 ℓ∞ rolled"}
        for k, sec in raw["compile"].items():
            name = labels.get(k) or bench_train.METHODS[k[len("step_"):]][0] + " train step"
            rows.append(_row("compile", f"compile {name} (s)", sec, COMPILE_TARGET_S, op="<",
                             seconds={"compile": sec}))
    if "evaluation" in sections:
        ev = raw["evaluation"]
        tp, med = ev["examples_per_s"], ev["median_s"]
        rows.append(_row("evaluation", f"evaluate {ev['suite']} throughput: 4 forced devices ÷ 1 device",
                         tp[4] / tp[1], None, has_goal=False,
                         seconds={"1 device": med[1], "4 devices": med[4]},
                         note=f"{tp[1]:.1f} vs {tp[4]:.1f} examples/s ({ev['examples']} mnist-5k test "
                              f"digits, batch {ev['batch']}); CPU seconds 1 ÷ 4 devices "
                              f"{ev['median_cpu_s'][1] / ev['median_cpu_s'][4]:.2f}; the 4 host "
                              "devices share the machine's cores"))
    if "reuse" in sections:
        for r in raw["reuse"]["functions"].values():
            a, b, c = r["first"], r["second_new_params"], r["new_closure"]
            rows.append(_row(
                "reuse", f"{r['label']}: compile s of a 2nd call with new parameters ÷ 1st call's",
                r["compile_ratio"], bench_reuse.REUSE_TARGET,
                seconds={"1st compile": a["compile_s"], "1st run": a["run_s"],
                         "2nd compile": b["compile_s"], "2nd run": b["run_s"],
                         "new closure compile": c["compile_s"]},
                note=f"{b['compiles']} XLA compilation(s) in the 2nd call, {c['compiles']} for a "
                     "new closure"))
    for r in rows:
        r["met"] = _met(r, quick)
    return rows


# ------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------


def _fmt_target(r):
    if r["target"] is None:
        return "—"
    op = {"<=": "≤", ">=": "≥", "<": "<"}[r["op"]]
    s = f"{op} {r['target']:g}"
    if r["stretch"] is not None:
        s += f" (stretch ≥ {r['stretch']:g})"
    return s


def _fmt_seconds(r):
    return ", ".join(f"{k} {v:.3f}" for k, v in r["seconds"].items() if v is not None) or "—"


def table_cells(rows):
    header = ["section", "goal", "measured", "target", "met", "seconds (reference)", "note"]
    cells = []
    for r in rows:
        m = r["measured"]
        cells.append([r["section"], r["goal"], "—" if m is None else f"{m:.2f}", _fmt_target(r),
                      r["met"], _fmt_seconds(r), r["note"]])
    return header, cells


def format_text(rows) -> str:
    header, cells = table_cells(rows)
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(c) for c in cells])


def format_markdown(rows) -> str:
    header, cells = table_cells(rows)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
    return "\n".join(out)


def format_header(meta) -> str:
    m, v = meta["machine"], meta["versions"]
    lines = [
        f"robustjax benchmarks — {meta['timestamp']}" + ("  [QUICK: smoke run, no goal is claimed]"
                                                        if meta["quick"] else ""),
        f"machine: {m['cpu_model']}, {m['usable_cores']} usable / {m['logical_cores']} logical cores, "
        f"{m['platform']}; JAX backend {m['jax_backend']} ({len(m['jax_devices'])} device(s)); "
        f"load average at start {m['load_average_1_5_15']}, at end {meta['load_average_end']}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"model: {common.MODEL_DESCRIPTION}; conv layer {meta['conv']}; batch {meta['batch']} "
        f"({meta['data']}); median of "
        f"{meta['repeats']} interleaved runs after a warm-up; torch threads {meta['threads']}",
    ]
    peer = meta.get("peer")
    if peer:
        if peer.get("status") == "ok":
            lines.append("peer: " + ", ".join(f"{k} {val}" for k, val in peer.items()
                                              if k.endswith("version") or k in ("torch", "torchattacks")))
        else:
            lines.append(f"peer: {peer.get('status')} ({peer.get('hint') or peer.get('error', '')})")
    return "\n".join(lines)
