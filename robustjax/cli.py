"""The ``robustjax`` command line: ``train``, ``evaluate``, ``analyze`` and ``experiment``.

    robustjax train --config configs/mnist5k/erm.py --workdir runs/erm [--set key=value ...] [--resume]
    robustjax evaluate --workdir runs/erm [--suite NAME] [--split test]
    robustjax analyze --workdir runs/erm [--compare runs/pgd ...] [--baseline random-init] [--analyses NAME,...]
    robustjax experiment roth2019 --workdir runs/roth2019 [--quick] [--resume]

``train`` and ``evaluate`` take the multi-process options: ``--processes N`` starts N cooperating processes on this
machine (CPU, gloo collectives; ``--cpu-devices K`` host devices each), ``--distributed`` joins a
job whose processes were started by a cluster (see ``robustjax.distributed``).

Also runnable as ``python -m robustjax``.
"""

from __future__ import annotations

import argparse
import sys
import time

from robustjax import distributed


def _print_strengths(config) -> None:
    """The method's strengths as the config writes them and in [0, 1] pixels (robustjax.units)."""
    import numpy as np

    from robustjax import data as rj_data
    from robustjax import units

    train = rj_data.load(config.dataset, "train", data_dir=config.get("data_dir", None))  # cached
    _, rows = units.resolve_method_kwargs(config, np.asarray(train.images))
    print(units.format_conversions(rows, method=config.method))


def _train(args) -> int:
    from robustjax.configs import apply_override, load_config
    from robustjax.training.loop import fit

    config = load_config(args.config)
    for assignment in args.set or []:
        apply_override(config, assignment)
    _print_strengths(config)
    start = time.perf_counter()
    _, history = fit(config, args.workdir, resume=args.resume)
    elapsed = time.perf_counter() - start
    if history and _primary():
        last = history[-1]
        print(
            f"done: {config.method} on {config.dataset} with {config.model}, {last['epoch']} epochs, "
            f"test accuracy {last['test_accuracy']:.4f} ({elapsed:.0f} s in this call); "
            f"workdir {args.workdir}"
        )
    return 0


def _evaluate(args) -> int:
    import jax

    from robustjax import data as rj_data
    from robustjax import evaluation, units
    from robustjax.training.loop import load_run
    from robustjax.training.objectives import inference_logits_fn

    run, state = load_run(args.workdir)
    config = run.config
    suite = args.suite or config.evaluation.suite
    split = args.split
    dataset = run.test_data if split == config.get("eval_split", "test") else rj_data.load(
        config.dataset, split, data_dir=config.get("data_dir", None)
    )
    if args.limit:
        dataset = rj_data.subset(dataset, args.limit)
    logits_fn = inference_logits_fn(run.model, state.params, state.model_state)
    rho_space = config.units.rho_space if "units" in config else "pixel"
    report = evaluation.evaluate(
        logits_fn,
        dataset,
        suite=suite,
        batch_size=args.batch_size or config.evaluation.batch_size,
        key=jax.random.PRNGKey(config.evaluation.seed),
        rho_space=None if rho_space == "pixel" else units.space_transform(rho_space, config.dataset),
    )
    if _primary():
        paths = evaluation.write_reports(report, args.workdir)
        print(report.table())  # includes the gradient-masking warnings
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _analyze(args) -> int:
    from robustjax.analyze import analyze

    start = time.perf_counter()
    outcome, paths = analyze(
        args.workdir, compare=args.compare or (), analyses=args.analyses, baseline=args.baseline,
        limit=args.limit, examples=args.examples, batch_size=args.batch_size, seed=args.seed,
        eps_linf=args.eps, eps_l2=args.eps_l2, progress=True,
    )
    n = len(outcome.models)
    print(f"analyzed {n} model{'s' if n != 1 else ''} ({', '.join(m.label for m in outcome.models)}) with "
          f"{len(outcome.analyses)} analyses in {time.perf_counter() - start:.0f} s")
    print(f"wrote {paths[0]}, {paths[1]} and {len(paths) - 2} figures analysis_*.png in {paths[0].parent}")
    return 0


EXPERIMENTS = ("roth2019", "sgr2018", "wen2020", "farnia2019", "soar2020")


def _experiment(args) -> int:
    """Run ``experiments/<paper>.py`` (in the source tree: the scripts are not packaged)."""
    import importlib
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if not (Path(root) / "experiments" / f"{args.paper}.py").is_file():
        raise ValueError(f"experiments/{args.paper}.py is not next to this robustjax package ({root}); "
                         "run from a source checkout")
    if root not in sys.path:
        sys.path.insert(0, root)
    importlib.import_module(f"experiments.{args.paper}").main(list(args.options))
    return 0


def _primary() -> bool:
    from robustjax.core.sharding import is_primary_process

    return is_primary_process()


def _add_process_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("several processes")
    group.add_argument(
        "--processes", type=int, default=None, metavar="N",
        help="start N cooperating JAX processes on this machine (CPU, gloo collectives, "
             "coordinator on 127.0.0.1)")
    group.add_argument(
        "--cpu-devices", type=int, default=None, metavar="K",
        help="host devices per process on CPU (jax_num_cpu_devices), e.g. to try data "
             "parallelism without accelerators")
    group.add_argument(
        "--distributed", action="store_true",
        help="join a multi-process job: every process runs this same command (cluster "
             "launchers such as Slurm or Open MPI are detected; else set JAX_COORDINATOR_ADDRESS, "
             "ROBUSTJAX_NUM_PROCESSES, ROBUSTJAX_PROCESS_ID)")


def _start(args, argv: list[str]) -> int | None:
    """Set up the processes the options ask for. Returns an exit code when this process only
    launched the job (``--processes``), ``None`` when it should run the command itself."""
    for name in ("processes", "cpu_devices"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer; got {value}")
    if args.distributed:
        distributed.initialize(cpu_devices=args.cpu_devices)
    elif args.processes is not None:
        # the children rerun this command line; --distributed makes each join the job
        command = [sys.executable, "-m", "robustjax", *argv, "--distributed"]
        return distributed.launch_local(command, processes=args.processes,
                                        cpu_devices=args.cpu_devices)
    elif args.cpu_devices is not None:
        import jax

        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustjax",
        description="Adversarial robustness through regularization (JAX/Flax).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a config file")
    train.add_argument("--config", required=True, help="path of a config file, e.g. configs/mnist5k/erm.py")
    train.add_argument("--workdir", required=True, help="directory for checkpoints and metrics")
    train.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable), e.g. --set epochs=3"
    )
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --workdir")
    _add_process_options(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="robustness evaluation of a trained run")
    evaluate.add_argument("--workdir", required=True, help="work directory written by `robustjax train`")
    evaluate.add_argument("--suite", default=None, help="attack suite name (default: the run config's)")
    evaluate.add_argument("--split", default="test", help="dataset split to evaluate (default: test)")
    evaluate.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    _add_process_options(evaluate)
    evaluate.set_defaults(func=_evaluate)

    analyze = commands.add_parser(
        "analyze", help="the papers' diagnostics of a trained run (figures, analysis.json/.md)",
        description="Run the papers' diagnostics (robustjax.analysis) on trained runs and write analysis.json, "
                    "analysis.md and one analysis_<figure>.png per figure into --workdir.")
    analyze.add_argument("--workdir", required=True, help="work directory written by `robustjax train`")
    analyze.add_argument("--compare", nargs="+", metavar="WORKDIR", default=None,
                         help="further runs overlaid in every figure (same dataset)")
    analyze.add_argument("--baseline", choices=["random-init"], default=None,
                         help="add the first run's network at its initialization")
    analyze.add_argument("--analyses", default=None, metavar="NAME,...",
                         help="comma-separated analyses (default: all); an unknown name lists the valid ones")
    analyze.add_argument("--limit", type=int, default=None, help="use only the first N test examples")
    analyze.add_argument("--examples", type=int, default=None,
                         help="examples of the Jacobian and path diagnostics (default 100, at most --limit)")
    analyze.add_argument("--batch-size", type=int, default=None, help="examples per compiled chunk (default 500)")
    analyze.add_argument("--seed", type=int, default=None, help="seed of the random directions and attacks (default 0)")
    analyze.add_argument("--eps", type=float, default=None,
                         help="ℓ∞ PGD radius in pixel units (default: the ℓ∞ training ε of a run, else the suite's)")
    analyze.add_argument("--eps-l2", type=float, default=None,
                         help="ℓ2 PGD radius in pixel units (default: the ℓ2 training ε of a run, else eps·√D/4)")
    analyze.set_defaults(func=_analyze)
    experiment = commands.add_parser(
        "experiment", help="re-measure a paper's claims (experiments/<paper>.py; options: --help after the name)")
    experiment.add_argument("paper", choices=EXPERIMENTS, help="which paper's experiment script to run")
    experiment.add_argument("options", nargs=argparse.REMAINDER,
                            help="passed to the script, e.g. --workdir runs/roth2019 --quick --resume")
    experiment.set_defaults(func=_experiment, processes=None, cpu_devices=None, distributed=False)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "processes"):
            code = _start(args, argv)
            if code is not None:
                return code
        return args.func(args)
    except ValueError as e:
        print(f"robustjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
