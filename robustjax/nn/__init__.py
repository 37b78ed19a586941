"""Flax Linen models of the papers and operator spectral normalization."""

# --- layers and model zoo (foundation issue) ---
from robustjax.nn.conv import Conv, conv_general_dilated  # noqa: F401  (issue 7; conv.conv too)
from robustjax.nn.batch_chains import num_chains, without_chains  # noqa: F401  (issue 18)
from robustjax.nn.convnets import CNN7, MLP, SGRCNN, SOARCNN, AlexNetSmall, ELUNet, ZooModel
from robustjax.nn.layers import (
    Standardize,
    global_max_pool,
    local_response_normalization,
    max_pool,
)
from robustjax.nn.resnet import PreActBlock, PreActResNet
from robustjax.nn.zoo import MODELS, create, model_names

# --- spectral normalization (spectral issue) ---
from robustjax.nn.spectral_norm import (  # noqa: E402,F401
    SpectralNormConv,
    SpectralNormDense,
    conv_operator_norm,
    conv_singular_values_fft,
    dense_operator_norm,
    reshaped_kernel_norm,
    spectral_normalized,
)

# --- exact singular values of any convolution operator (issue 12) ---
from robustjax.nn.conv_spectrum import (  # noqa: E402,F401
    SV_METHODS,
    ConvSpectrum,
    conv_frobenius_norm,
    conv_singular_values,
    conv_singular_values_exact,
    conv_singular_values_polyphase,
)
