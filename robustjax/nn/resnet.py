"""Pre-activation CIFAR ResNets (He, Zhang, Ren & Sun 2016), used by Wen, Li & Jia (paper 002).

Wen et al. train ResNet-56 and ResNet-110 on CIFAR-10/100 (§4.1, Fig. 1, 3, 5; Tables 3-4)
and, for the spectral-complexity study (App. B.4.2 / D.3), the same ResNets *without*
BatchNorm, trained from Fixup initialization (Zhang et al. 2019) with the Fixup scalar
layers omitted. Both variants are here: ``normalization="batch"`` (default) and
``normalization="none"``.

Architecture (He et al. 2016, CIFAR variant, depth = 6n + 2): a 3x3 convolution to 16
channels, three stages of n residual blocks with 16, 32, 64 channels (the first block of
stages 2 and 3 has stride 2), then BN-ReLU, global average pooling and a dense K layer. Each
block is pre-activation: ``x + conv(relu(bn(conv(relu(bn(x))))))``. Shortcuts are
parameter-free ("option A" of the original paper: subsample by 2 and zero-pad the new
channels), which gives the parameter counts the paper states (0.27M for ResNet-20, 0.85M for
ResNet-56; checked in the tests).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from robustjax.core.validation import check_choice, check_positive_int
from robustjax.nn.conv import Conv
from robustjax.nn.convnets import BN_EPSILON, BN_MOMENTUM, ZooModel

__all__ = ["PreActResNet", "PreActBlock"]


def _norm(normalization: str, train: bool, name: str):
    if normalization == "batch":
        return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                            epsilon=BN_EPSILON, name=name)
    return lambda x: x


class PreActBlock(nn.Module):
    """One pre-activation basic block (two 3x3 convolutions) with a parameter-free shortcut."""

    features: int
    strides: int = 1
    normalization: str = "batch"
    num_blocks: int = 1  # total residual blocks in the network (Fixup scaling)
    conv: Callable[..., nn.Module] = Conv  # robustjax.nn.conv.Conv (drop-in nn.Conv)

    @nn.compact
    def __call__(self, x, train: bool = False):
        use_bn = self.normalization == "batch"
        if use_bn:
            init1 = init2 = {}
        else:
            # Fixup (Zhang, Dauphin & Ma 2019), m = 2 layers per branch: scale the He-normal
            # init of the first layer by L^(-1/(2m-2)) = L^(-1/2) (variance by 1/L) and start
            # the last layer of each branch at zero; no scalar multipliers/biases (Wen et al.,
            # App. D.3, omit them).
            init1 = {"kernel_init": jax.nn.initializers.variance_scaling(
                2.0 / self.num_blocks, "fan_in", "normal")}
            init2 = {"kernel_init": jax.nn.initializers.zeros}
        out = nn.relu(_norm(self.normalization, train, "bn1")(x))
        out = self.conv(features=self.features, kernel_size=(3, 3),
                        strides=(self.strides, self.strides), padding=((1, 1), (1, 1)),
                        use_bias=not use_bn, name="conv1", **init1)(out)
        out = nn.relu(_norm(self.normalization, train, "bn2")(out))
        out = self.conv(features=self.features, kernel_size=(3, 3), strides=(1, 1),
                        padding=((1, 1), (1, 1)), use_bias=not use_bn, name="conv2",
                        **init2)(out)
        shortcut = x
        if self.strides != 1:
            shortcut = shortcut[:, :: self.strides, :: self.strides, :]
        extra = self.features - x.shape[-1]
        if extra > 0:
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, extra)))
        elif extra < 0:
            raise ValueError("a residual block cannot reduce the number of channels")
        return out + shortcut


class PreActResNet(ZooModel):
    """Pre-activation ResNet-``depth`` for 32x32 images (He et al. 2016; Wen et al., paper 002).

    ``depth`` = 6n + 2 (20, 56 and 110 are the ones in the papers); ``widths`` are the three
    stage widths (16, 32, 64). ``normalization="none"`` is Wen et al.'s BatchNorm-free variant
    (App. D.3) with Fixup initialization (see :class:`PreActBlock`); its convolutions then have
    biases. With BatchNorm, convolutions have no bias (the following BN absorbs it).
    """

    depth: int = 20
    widths: Sequence[int] = (16, 32, 64)
    normalization: str = "batch"

    def _check(self):
        check_positive_int(self.depth, name="depth", minimum=8)
        if (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...); got {self.depth}")
        check_choice(self.normalization, name="normalization", allowed=("batch", "none"))
        if len(tuple(self.widths)) != 3:
            raise ValueError(f"widths must list 3 stage widths; got {self.widths!r}")
        for w in self.widths:
            check_positive_int(w, name="widths")

    @nn.compact
    def forward(self, x, train: bool = False):
        n = (self.depth - 2) // 6
        use_bn = self.normalization == "batch"
        x = self._standardize(x)
        x = self.conv(features=self.widths[0], kernel_size=(3, 3), strides=(1, 1),
                      padding=((1, 1), (1, 1)), use_bias=not use_bn, name="conv_in")(x)
        for s, w in enumerate(self.widths):
            for b in range(n):
                x = PreActBlock(features=w, strides=2 if (s > 0 and b == 0) else 1,
                                normalization=self.normalization, num_blocks=3 * n,
                                conv=self.conv, name=f"stage{s + 1}_block{b + 1}")(x, train)
        x = nn.relu(_norm(self.normalization, train, "bn_out")(x))
        x = jnp.mean(x, axis=(1, 2))
        return self._logits(x)
