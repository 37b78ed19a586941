"""Norms and projections, losses, power iteration, Jacobian and HVP operators (JAX and chex only)."""

from robustjax.core import validation  # noqa: F401

# --- norms & losses (attacks issue) ---
from robustjax.core.norms import (  # noqa: F401,E402
    clip_to_range,
    l1_norm,
    l2_norm,
    linf_norm,
    per_example_norm,
    project_to_ball,
    round_into_ball,
    sample_uniform_ball,
    steepest_ascent_direction,
)
from robustjax.core.losses import (  # noqa: F401,E402
    adversarial_objective,
    cross_entropy,
    cw_margin_loss,
    margin,
    margin_ramp_loss,
    ramp_loss,
    sum_of_squares,
)

# --- power iteration, Jacobians, HVPs (spectral issue) ---
from robustjax.core.power import (  # noqa: F401,E402
    conv_apply,
    conv_operator,
    dense_operator,
    power_iteration,
)
from robustjax.core.jacobian import (  # noqa: F401,E402
    input_jacobian,
    jacobian_by_regression,
    jacobian_operator,
    jacobian_singular_values,
    jacobian_top_singular,
)
from robustjax.core.hvp import (  # noqa: F401,E402
    input_grad,
    input_hvp,
    input_hvp_finite_difference,
)

# --- compile options of training steps (performance issue) ---
from robustjax.core import compile  # noqa: F401,E402
from robustjax.core.compile import cpu_compiler_options  # noqa: F401,E402

# --- data parallelism on a 1-D "data" mesh, one process or several (scale-out issue) ---
from robustjax.core import sharding  # noqa: F401,E402
# --- compiled programs reused across parameters (notebook issue) ---
from robustjax.core import programs  # noqa: F401,E402
from robustjax.core.programs import compile_stats, split_callable  # noqa: F401,E402
