"""Shared plumbing of the paper reproductions in ``experiments/`` (one script per paper).

Every script has the same command line (:func:`parser`): ``--workdir`` (runs, results and
figures), ``--quick`` (about a minute: one short epoch on a few hundred digits; what the slow
tests run), ``--config-set cpu|paper`` (the CPU configs of ``configs/mnist5k/`` or the paper-scale
configs of ``configs/<paper>/``), ``--resume`` (reuse the finished runs already in the workdir and
continue unfinished ones), ``--seeds``. Training goes through the normal :func:`fit` path from a
config file; each run lives in ``WORKDIR/runs/<name>-s<seed>/`` like any ``robustjax train`` run.

Outputs: ``results.json`` (the measured numbers, every run's settings and the git commit),
``results.md`` (the same as tables with the verdicts) and ``figures/*.png``.

Verdicts (issue 13): a claim that compares A with B "holds" only when the effect is larger than the
seed spread, i.e. every seed of A beats every seed of B (:func:`verdict`); "holds weakly" when the
means agree with the claim but the seed ranges overlap; "does not hold at this scale" otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG_SETS = ("cpu", "paper")
HOLDS, WEAK, FAILS, NOT_MEASURED = "holds", "holds weakly", "does not hold at this scale", "not yet measured"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one invocation runs: the parsed command line, resolved."""

    paper: str
    workdir: Path
    quick: bool
    config_set: str
    resume: bool
    seeds: tuple[int, ...]
    examples: int

    @property
    def mode(self) -> str:
        return "quick" if self.quick else self.config_set

    @property
    def figures(self) -> Path:
        return self.workdir / "figures"


def parser(paper: str, description: str, *, default_examples: int, quick_examples: int = 32,
           default_seeds: int = 1) -> argparse.ArgumentParser:
    """The command line every experiment shares (``python -m experiments.<paper> --help``)."""
    p = argparse.ArgumentParser(prog=f"experiments.{paper}", description=description)
    p.add_argument("--workdir", default=f"runs/{paper}", help="runs, results.json/.md and figures/ go here")
    p.add_argument("--quick", action="store_true",
                   help="about a minute: 1 epoch on a few hundred training digits, few test points")
    p.add_argument("--config-set", choices=CONFIG_SETS, default="cpu",
                   help="cpu: configs/mnist5k (CPU-sized, default); paper: configs/" + paper + " (accelerator)")
    p.add_argument("--resume", action="store_true",
                   help="reuse finished runs in the workdir and continue unfinished ones")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"number of training seeds (default {default_seeds}; 1 with --quick)")
    p.add_argument("--examples", type=int, default=None,
                   help=f"test examples for the diagnostics (default {default_examples}; {quick_examples} with --quick)")
    p.set_defaults(paper=paper, default_examples=default_examples, quick_examples=quick_examples,
                   default_seeds=default_seeds)
    return p


def settings(args: argparse.Namespace) -> Settings:
    """Resolve the parsed command line (defaults that depend on ``--quick``)."""
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else args.default_seeds)
    examples = args.examples if args.examples is not None else (
        args.quick_examples if args.quick else args.default_examples)
    for name, value in (("--seeds", seeds), ("--examples", examples)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value}")
    return Settings(paper=args.paper, workdir=Path(args.workdir), quick=bool(args.quick),
                    config_set=args.config_set, resume=bool(args.resume),
                    seeds=tuple(range(seeds)), examples=int(examples))


# ------------------------------------------------------------------------------------------------
# configs and runs
# ------------------------------------------------------------------------------------------------

QUICK_OVERRIDES = ("epochs=1", "train_limit=512", "batch_size=128")


def config_file(s: Settings, cpu_name: str, paper_name: str | None) -> Path:
    """``configs/mnist5k/<cpu_name>.py`` (cpu, quick) or ``configs/<paper>/<paper_name>.py``."""
    if s.config_set == "paper" and not s.quick:
        if paper_name is None:
            raise ValueError(f"{s.paper}: this run has no paper-scale config; use --config-set cpu")
        return ROOT / "configs" / s.paper / f"{paper_name}.py"
    return ROOT / "configs" / "mnist5k" / f"{cpu_name}.py"


def make_config(s: Settings, cpu_name: str, paper_name: str | None = None, *, seed: int = 0,
                cpu_overrides: Sequence[str] = (), overrides: Sequence[str] = ()):
    """Load a config through the public path (``robustjax.configs.load_config``) and apply
    ``--set``-style overrides: ``cpu_overrides`` only for the CPU set, then the quick ones, then
    ``overrides`` (every set), then the seed."""
    from robustjax.configs import apply_override, load_config

    config = load_config(config_file(s, cpu_name, paper_name))
    assignments = list(overrides)
    if s.config_set == "cpu" or s.quick:
        assignments = list(cpu_overrides) + assignments
    if s.quick:
        assignments += list(QUICK_OVERRIDES)
    for assignment in assignments + [f"seed={seed}"]:
        apply_override(config, assignment)
    return config


def run_dir(s: Settings, name: str, seed: int) -> Path:
    return s.workdir / "runs" / f"{name}-s{seed}"


def _stored_config(workdir: Path) -> dict | None:
    path = workdir / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def train(s: Settings, name: str, config, *, seed: int, log: Callable = print) -> dict:
    """Train ``config`` into ``WORKDIR/runs/<name>-s<seed>`` through ``robustjax.training.fit``.

    With ``--resume`` a finished run with the same config is reused as it is and an unfinished
    one continues from its newest checkpoint; a run whose stored config differs is an error
    (delete it or use another workdir). Without ``--resume`` an existing run is an error (fit's
    own check). Returns the run's summary (final metrics, seconds of training in this call).
    """
    from robustjax.training.loop import fit

    workdir = run_dir(s, name, seed)
    stored = _stored_config(workdir)
    wanted = json.loads(config.to_json())
    if stored is not None and s.resume and stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise ValueError(f"run {str(workdir)!r} was trained with another config (keys {changed}); "
                         "delete it or choose another --workdir")
    start = time.perf_counter()
    log(f"[{s.paper}] training {name} (seed {seed}, {config.epochs} epochs) in {workdir}")
    _, history = fit(config, workdir, resume=s.resume, progress=False)
    seconds = time.perf_counter() - start
    last = history[-1]
    return {"name": name, "seed": seed, "workdir": str(workdir), "epochs": int(last["epoch"]),
            "method": config.method, "method_kwargs_pixels": resolved_method_kwargs(config),
            "sn_beta": config.get("sn_beta", None),
            "train_accuracy": last["train_accuracy"], "train_loss": last["train_loss"],
            "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
            "seconds_this_call": round(seconds, 1), "history": history}


def load_model(workdir):
    """``(run, logits_fn)`` of a trained run: the inference-mode model function."""
    from robustjax.training.loop import load_run
    from robustjax.training.objectives import inference_logits_fn

    run, state = load_run(workdir)
    return run, inference_logits_fn(run.model, state.params, state.model_state)


def test_points(run, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test examples (images in [0, 1], labels) of a run's eval split."""
    n = min(int(n), len(run.test_data))
    return np.asarray(run.test_data.images[:n]), np.asarray(run.test_data.labels[:n])


def train_points(run, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` examples of the training set the run saw (its labels, random or not)."""
    n = min(int(n), len(run.train_data))
    return np.asarray(run.train_data.images[:n]), np.asarray(run.train_data.labels[:n])


def resolved_method_kwargs(config) -> dict:
    """The method's hyper-parameters in [0, 1] pixel units as the fit loop resolves them."""
    from robustjax import data as rj_data
    from robustjax.training.loop import method_kwargs_of

    return method_kwargs_of(config, rj_data.load(config.dataset, "train", data_dir=config.get("data_dir", None)))


# ------------------------------------------------------------------------------------------------
# statistics and verdicts
# ------------------------------------------------------------------------------------------------

def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std, min, max and the values over seeds."""
    v = np.asarray(list(values), np.float64)
    if v.size == 0:
        raise ValueError("values must hold at least one number")
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size), "values": [float(x) for x in v]}


def verdict(higher: Sequence[float], lower: Sequence[float], *, margin: float = 0.0) -> str:
    """Whether ``higher > lower + margin`` as the claim says, judged against the seed spread.

    "holds": every value of ``higher`` exceeds every value of ``lower`` by more than ``margin``
    (with one seed each: the difference exceeds ``margin``); "holds weakly": only the means do;
    else "does not hold at this scale".
    """
    h, lo = np.asarray(list(higher), np.float64), np.asarray(list(lower), np.float64)
    if h.size == 0 or lo.size == 0:
        raise ValueError("higher and lower must hold at least one value each")
    if h.min() > lo.max() + margin:
        return HOLDS
    if h.mean() > lo.mean() + margin:
        return WEAK
    return FAILS


def all_hold(verdicts: Sequence[str]) -> str:
    """The verdict of a claim made of several parts: the weakest part's."""
    order = (FAILS, WEAK, HOLDS)
    vs = [v for v in verdicts if v != NOT_MEASURED]
    if not vs:
        return NOT_MEASURED
    return min(vs, key=order.index)


# ------------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------------

def git_commit() -> str:
    """The commit of the checkout (``+dirty`` when the code, ``robustjax/``, ``experiments/`` or
    ``configs/``, has uncommitted changes). Read
    once when a script starts (:data:`STARTED_AT_COMMIT`): the code that ran, even if the
    checkout moves on while it runs."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "robustjax", "experiments", "configs"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


STARTED_AT_COMMIT = git_commit()


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for results (NumPy scalars/arrays, tuples, Paths, non-finite floats)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else str(f)
    if isinstance(value, Path):
        return str(value)
    return value


def save_figure(s: Settings, fig, name: str) -> str:
    """Save a matplotlib figure as ``figures/<name>.png`` (dpi 90, small enough to commit)."""
    s.figures.mkdir(parents=True, exist_ok=True)
    path = s.figures / f"{name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return str(path.relative_to(s.workdir))


def write_results(s: Settings, claims: list[dict], measurements: dict, runs: list[dict],
                  *, extra_markdown: str = "", started: float) -> dict:
    """Write ``results.json`` and ``results.md``; return the JSON document.

    ``claims``: one dict per claim row: ``claim``, ``paper`` (the paper's figure/number),
    ``measured`` (text), ``verdict``, ``figures`` (paths relative to the workdir).
    """
    doc = {
        "paper": s.paper,
        "commit": STARTED_AT_COMMIT,
        "command": " ".join([Path(sys.executable).name, "-m", f"experiments.{s.paper}", *sys.argv[1:]]),
        "mode": s.mode,
        "seeds": list(s.seeds),
        "examples": s.examples,
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "claims": claims,
        "measurements": measurements,
        "runs": [{k: v for k, v in r.items() if k != "history"} | {"test_accuracy_by_epoch":
                 [h["test_accuracy"] for h in r.get("history", [])]} for r in runs],
    }
    doc = to_jsonable(doc)
    s.workdir.mkdir(parents=True, exist_ok=True)
    (s.workdir / "results.json").write_text(json.dumps(doc, indent=2))
    lines = [f"# {s.paper}: claims re-measured ({s.mode}, seeds {list(s.seeds)}, commit {doc['commit'][:12]})", "",
             "| claim | paper | measured here | verdict | figures |", "|---|---|---|---|---|"]
    if s.quick:
        lines.insert(1, "\n*--quick: a plumbing check (1 epoch on 512 digits); its verdicts mean nothing.*")
    for c in claims:
        figs = " ".join(f"[{Path(f).stem}]({f})" for f in c.get("figures", []))
        lines.append(f"| {c['claim']} | {c['paper']} | {c['measured']} | {c['verdict']} | {figs} |")
    lines += ["", extra_markdown.strip(), "",
              "| run | seed | epochs | train acc | test acc | s (this call) |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['seed']} | {r['epochs']} | {r['train_accuracy']:.3f} | "
                     f"{r['test_accuracy']:.3f} | {r['seconds_this_call']} |")
    (s.workdir / "results.md").write_text("\n".join(lines) + "\n")
    return doc


def fmt(stats: dict, digits: int = 3) -> str:
    """``mean ± std (n seeds)`` or ``value`` for one seed."""
    if stats["n"] == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} ({stats['n']} seeds)"


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------

def linf_pgd(name: str, eps: Sequence[float], *, steps: int, step_size_factor: float = None):
    """An ℓ∞ PGD spec with a uniform random start (``step_size = factor·ε``, default 2.5/steps)."""
    from robustjax.evaluation.suites import AttackSpec

    factor = 2.5 / steps if step_size_factor is None else step_size_factor
    return AttackSpec(name, "pgd", eps=tuple(eps), norm=math.inf,
                      params={"steps": steps, "step_size_factor": factor, "random_start": True})


def robust_accuracies(logits_fn, x, y, specs, *, seed: int = 0, batch_size: int = 250,
                      attack_labels: str = "true") -> dict:
    """Clean accuracy and accuracy under each (attack, ε) of ``specs`` through
    ``robustjax.evaluation.evaluate``; ``{"clean": a, "<attack>@<ε label>": a, ...,
    "masking_warnings": [...]}``."""
    from robustjax import evaluation

    report = evaluation.evaluate(logits_fn, (x, y), suite=list(specs), batch_size=min(batch_size, len(x)),
                                 key=seed, progress=False, attack_labels=attack_labels)
    out = {"clean": report.clean_accuracy, "mean_max_probability": report.mean_max_prob}
    for r in report.results:
        out[f"{r.attack}@{r.eps_label}" if r.eps_label else r.attack] = float(
            np.mean(r.robust_mask(report.clean_correct)))
        if "rho" in r.extras:
            out[f"{r.attack} rho"] = float(r.extras["rho"])
    out["masking_warnings"] = [w.name for w in report.warnings]
    return out


def penultimate_fn(workdir) -> Callable:
    """``x -> φ^{L−1}(x)``: the input of a zoo model's ``logits`` layer (Roth et al. 2019, §5.3
    measure linearity there), in inference mode, through a Flax method interceptor."""
    import flax.linen as nn

    from robustjax.training.loop import load_run

    run, state = load_run(workdir)
    variables = state.variables()

    def features(x):
        captured = []

        def interceptor(next_fun, args, kwargs, context):
            if context.module.name == "logits" and context.method_name == "__call__":
                captured.append(args[0])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            run.model.apply(variables, x, train=False)
        if not captured:
            raise ValueError(f"the model of {str(workdir)!r} has no layer named 'logits'")
        return captured[-1]

    return features
