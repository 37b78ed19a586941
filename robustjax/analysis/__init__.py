"""Diagnostics of the papers: spectra, alignment, margins, layer singular values."""

# --- layer spectra (spectral issue) ---
from robustjax.analysis.layer_spectra import (  # noqa: E402,F401
    LayerInfo,
    SpectralReport,
    collect_layers,
    network_spectral_report,
    penalty_layers,
)

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
