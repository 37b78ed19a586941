"""Regularizers as pure functions of ``logits_fn``."""

# --- data-dependent spectral norm, SGR/GN + covariance state, SOAR (issue 5) ---
from robustjax.regularizers.covariance import (  # noqa: E402
    CovarianceFunction,
    DiagonalCovariance,
    FullCovariance,
    as_covariance_state,
    covariance_apply,
    covariance_init,
    covariance_matrix,
    covariance_mean,
    covariance_scale,
    covariance_update,
    mean_feature_variance,
    perturbations,
)
from robustjax.regularizers.data_dependent_spectral_norm import (  # noqa: E402
    jacobian_spectral_penalty,
    sos_spectral_penalty,
)
from robustjax.regularizers.sgr import (  # noqa: E402
    gradient_norm_penalty,
    gradient_norm_penalty_of_gradient,
    log_likelihood_input_gradient,
    sgr_penalty,
    sgr_penalty_of_gradient,
)
from robustjax.regularizers.soar import (  # noqa: E402
    soar_directions,
    soar_evaluation_point,
    soar_penalty,
    soar_radius_squared,
)

# --- global spectral norm (spectral issue) ---
from robustjax.regularizers.global_spectral_norm import (  # noqa: E402,F401
    DENSE,
    ConvGeometry,
    global_spectral_penalty,
    global_spectral_state_init,
    layer_spectral_norms,
)
