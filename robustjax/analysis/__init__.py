"""Diagnostics of the papers: spectra, alignment, linearity, margins, capacity, covariance.

Convention of the paper diagnostics:

* Pure, batch-first functions of a model function (``logits_fn: x[B, ...] -> logits[B, K]``,
  ``fn``/``features_fn: x[B, ...] -> φ[B, ...]`` for a hidden layer, ``loss_fn: x[B, ...] ->
  loss[B]``) or of logits; examples are independent (BatchNorm in inference mode). Bad
  arguments raise a ``ValueError`` naming them.
* Path diagnostics (``local_linearity``, ``sigma_along_path``, ``taylor_approximation_quality``)
  normalize each ``directions[i]`` to unit ℓ2 norm and evaluate at ``x + t·d̂`` for every radius
  ``t ≥ 0``: ``t`` is the ℓ2 distance in pixel units (data in [0, 1]). ``softmax_along_trajectory``
  instead takes ``ts`` as signed multiples of ``delta`` (SGR Fig. 6: −5 … 5).
* Diagnostics over a dataset under attack (``generalization_gaps``, ``max_loss_variation``,
  ``adversarial_margin_loss``) take an ``attack``: an ``evaluation.AttackSpec`` (every strength
  is a run), a mapping of its fields, or a callable (``analysis.attacked``).
* Each returns a frozen dataclass (:class:`AnalysisResult`) of NumPy arrays with ``summary()``
  (JSON-safe aggregates for ``analysis.json``/``.md``) and ``to_json()`` (every field);
  per-example fields have the example axis first and :func:`concatenate_results` joins
  batches. Each has a ``plot_*`` companion (matplotlib Agg) that takes one result or a mapping
  ``{label: result}`` to overlay runs (``{"ERM": r1, "PGD AT": r2}``) and returns a
  ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``).
* ``robustjax analyze`` (``robustjax.analyze``) runs all of them on trained runs.

==================================  ====================================  ==================================
function                            paper, figure / equation              plot
==================================  ====================================  ==================================
``perturbation_alignment``          Roth 2019, Fig. 1 (left, right),      ``plot_perturbation_alignment``,
                                    Fig. 3 right                          ``plot_alignment_vs_eps``
``local_linearity``                 Roth 2019, §5.3, Fig. 2 left          ``plot_local_linearity``
``sigma_along_path``                Roth 2019, §5.3, Fig. 2 right         ``plot_sigma_along_path``
``perturbation_covariance``         SGR 2018, eq. 15–16, Fig. 1–2, fn 5   ``plot_perturbation_covariance``,
                                                                          ``plot_covariance_function``
``softmax_along_trajectory``        SGR 2018, Fig. 6                      ``plot_softmax_trajectory``
``taylor_approximation_quality``    SOAR 2020, eq. 4, 9, Fig. 1, 4        ``plot_taylor_approximation``
``confidence_at_points``            SOAR 2020, App. B, Table 5            ``plot_confidence``
``margin_distribution``             Wen 2020, Def. 3, Fig. 4              ``plot_margin_distribution``
``probability_and_loss_histograms`` Wen 2020, Fig. 5a–b                   ``plot_probability_and_loss_histograms``
``generalization_gaps``             Wen 2020, §4.1, Fig. 3, Table 2       ``plot_generalization_gaps``
``max_loss_variation``              Wen 2020, App. B.5, Fig. 8, Table 1   ``plot_max_loss_variation``
``network_spectral_report``         Wen 2020, Fig. 1a (``sv_std``);       ``plot_singular_value_std``
                                    Farnia 2019, Alg. 1, App. A.1
``margin_loss``,                    Farnia 2019, eq. 1, eq. 8, Fig. 3     ``plot_adversarial_margin_loss``
``adversarial_margin_loss``
``capacity_scores``                 Farnia 2019, Theorems 1–4             ``plot_capacity_scores``
``norm_gain``                       Farnia 2019, §5.1, Fig. 2a            ``plot_norm_gain``
``input_gradient_norms``            Farnia 2019, Fig. 2b                  ``plot_input_gradient_norms``
==================================  ====================================  ==================================
"""

# --- layer spectra (spectral issue) ---
from robustjax.analysis.layer_spectra import (  # noqa: E402,F401
    LayerInfo,
    SpectralReport,
    collect_layers,
    network_spectral_report,
    penalty_layers,
)

# --- issue 12 (helper i12a): Roth 2019 alignment/linearity, SGR 2018 covariance/trajectory,
# SOAR 2020 Taylor quality/confidence, their plots, and the shared result convention ---
from robustjax.analysis.results import (  # noqa: E402,F401
    AnalysisResult,
    concatenate_results,
    jsonable,
)
from robustjax.analysis.alignment import (  # noqa: E402,F401
    AlignmentResult,
    perturbation_alignment,
)
from robustjax.analysis.linearity import (  # noqa: E402,F401
    LinearityResult,
    SigmaPathResult,
    local_linearity,
    sigma_along_path,
)
from robustjax.analysis.covariance import (  # noqa: E402,F401
    CovarianceResult,
    decay_length,
    perturbation_covariance,
)
from robustjax.analysis.trajectory import (  # noqa: E402,F401
    TrajectoryResult,
    softmax_along_trajectory,
)
from robustjax.analysis.taylor import (  # noqa: E402,F401
    TaylorResult,
    taylor_approximation_quality,
)
from robustjax.analysis.confidence import (  # noqa: E402,F401
    EVALUATION_POINTS,
    ConfidenceResult,
    confidence_at_points,
)
from robustjax.analysis.plots_roth import (  # noqa: E402,F401
    plot_alignment_vs_eps,
    plot_local_linearity,
    plot_perturbation_alignment,
    plot_sigma_along_path,
)
from robustjax.analysis.plots_sgr import (  # noqa: E402,F401
    plot_covariance_function,
    plot_perturbation_covariance,
    plot_softmax_trajectory,
)
from robustjax.analysis.plots_soar import (  # noqa: E402,F401
    plot_confidence,
    plot_taylor_approximation,
)
# --- end issue 12 (helper i12a) ---

# --- issue 12 (helper i12b): Wen 2020 margins/histograms/gaps/loss variation, Farnia 2019
# margin loss/capacity scores/norm gain/gradient norms, their plots; strided-conv spectra in
# network_spectral_report (sv_method). Results follow robustjax.analysis.results. ---
from robustjax.analysis.attacked import AttackRun, resolve_attack  # noqa: E402,F401
from robustjax.analysis.margins import (  # noqa: E402,F401
    AdversarialMarginLoss,
    MarginDistribution,
    ProbabilityLossHistograms,
    adversarial_margin_loss,
    margin_distribution,
    margin_loss,
    probability_and_loss_histograms,
)
from robustjax.analysis.generalization import (  # noqa: E402,F401
    GeneralizationGaps,
    LossVariation,
    generalization_gaps,
    max_loss_variation,
)
from robustjax.analysis.capacity import ATTACK_SCHEMES, CapacityScores, capacity_scores  # noqa: E402,F401
from robustjax.analysis.gradients import (  # noqa: E402,F401
    InputGradientNorms,
    NormGain,
    input_gradient_norms,
    norm_gain,
)
from robustjax.analysis.plots_wen import (  # noqa: E402,F401
    plot_generalization_gaps,
    plot_margin_distribution,
    plot_max_loss_variation,
    plot_probability_and_loss_histograms,
    plot_singular_value_std,
)
from robustjax.analysis.plots_farnia import (  # noqa: E402,F401
    plot_adversarial_margin_loss,
    plot_capacity_scores,
    plot_input_gradient_norms,
    plot_norm_gain,
)
# --- end issue 12 (helper i12b) ---
