"""Batch robustness evaluation: attack suites as data, chunked evaluation with per-example
results and the pointwise worst case, accuracy-vs-ε curves, transfer matrices, gradient-masking
checks and reports (JSON / Markdown / PNG).

Each chunk is split over the data mesh of every device (``placement.py``), in one process or
several (``robustjax.distributed``).

Typical use::

    from robustjax import evaluation
    report = evaluation.evaluate(logits_fn, (images, labels), suite="mnist-quick",
                                 batch_size=256, key=jax.random.key(0))
    print(report.table())
    evaluation.write_reports(report, "runs/eval")
"""

from robustjax.evaluation.curves import AccuracyCurve, accuracy_vs_eps, plot_accuracy_curves
from robustjax.evaluation.evaluator import (
    AttackResult,
    RobustnessReport,
    as_arrays,
    check_invariants,
    evaluate,
    mean_l2_norm,
    threat_label,
)
from robustjax.evaluation.masking import (
    EXPLANATIONS,
    MaskingWarning,
    check_report,
    check_transfer,
)
from robustjax.evaluation.placement import ChunkPlacement
from robustjax.evaluation.reports import (
    REPORT_FILES,
    format_table,
    plot_report,
    report_to_dict,
    report_to_markdown,
    write_reports,
)
from robustjax.evaluation.suites import (
    ATTACK_KINDS,
    SUITES,
    TRANSFER_ATTACKS,
    AttackSpec,
    format_eps,
    get_suite,
    list_suites,
    parse_eps,
    register_suite,
    resolve_suite,
)
from robustjax.evaluation.transfer import TransferMatrix, transfer_matrix

__all__ = [
    "ATTACK_KINDS",
    "AccuracyCurve",
    "AttackResult",
    "AttackSpec",
    "ChunkPlacement",
    "EXPLANATIONS",
    "MaskingWarning",
    "REPORT_FILES",
    "RobustnessReport",
    "SUITES",
    "TRANSFER_ATTACKS",
    "TransferMatrix",
    "accuracy_vs_eps",
    "as_arrays",
    "check_invariants",
    "check_report",
    "check_transfer",
    "evaluate",
    "format_eps",
    "format_table",
    "get_suite",
    "list_suites",
    "mean_l2_norm",
    "parse_eps",
    "plot_accuracy_curves",
    "plot_report",
    "register_suite",
    "report_to_dict",
    "report_to_markdown",
    "resolve_suite",
    "threat_label",
    "transfer_matrix",
    "write_reports",
]
