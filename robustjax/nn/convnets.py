"""The plain (non-residual) networks of the five papers, as Flax Linen modules.

Shared contract (see ``robustjax/nn/zoo.py`` for the registry):

* ``model.apply(variables, x, train=False) -> logits[B, K]``; ``x`` float32 in [0, 1], NHWC
  (the MLP flattens any input). Models with BatchNorm keep running statistics in the
  ``batch_stats`` collection (``train=True`` needs ``mutable=['batch_stats']``); in eval
  mode every model is deterministic and examples are independent.
* The first layer is :class:`~robustjax.nn.layers.Standardize` (``mean``/``std`` per channel,
  default 0/1), so attack radii are in [0, 1] pixel units.
* Every dense / convolution layer is built through the module attributes ``dense`` and
  ``conv`` (default ``flax.linen.Dense`` / :class:`robustjax.nn.conv.Conv`, a drop-in
  ``flax.linen.Conv`` with the same parameters whose gradients XLA:CPU runs faster), called with keyword
  arguments only (``features``, ``kernel_size``, ``strides``, ``padding``, ``use_bias``,
  ``kernel_init``, ``name``), so spectral normalization is injected with e.g.
  ``conv=partial(SpectralNormConv, beta=1.0), dense=partial(SpectralNormDense, beta=1.0)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn

from robustjax.core.validation import check_choice, check_positive_int
from robustjax.nn.batch_chains import chained_call, check_batch_chains
from robustjax.nn.conv import Conv
from robustjax.nn.layers import (
    POOL_TIES,
    Standardize,
    as_constant,
    check_mean_std,
    global_max_pool,
    local_response_normalization,
    max_pool,
)

__all__ = ["MLP", "SGRCNN", "SOARCNN", "CNN7", "AlexNetSmall", "ELUNet", "ZooModel",
           "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "elu": nn.elu}

#: PyTorch BatchNorm defaults (running average weight 0.1 for the new batch, eps 1e-5); the
#: papers' reference implementations are PyTorch or use these values.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class ZooModel(nn.Module):
    """Fields shared by every zoo model (see the module docstring for the contract)."""

    num_classes: int = 10
    mean: float | Sequence[float] = 0.0
    std: float | Sequence[float] = 1.0
    dense: Callable[..., nn.Module] = nn.Dense
    #: ``robustjax.nn.conv.Conv``: ``nn.Conv``'s parameters and values, faster derivatives on
    #: XLA:CPU (issue 7); pass ``conv=nn.Conv`` for the plain Flax layer.
    conv: Callable[..., nn.Module] = Conv
    #: gradient rule of the non-overlapping max-pools at tied maxima (``layers.max_pool``):
    #: "split" (equal shares, default) or "first" (Flax / PyTorch: all to the first maximum)
    pool_ties: str = "split"
    #: differentiated passes (``jax.grad``, ``jax.jvp``, ...) over a batch run as this many
    #: independent slices: ``"auto"`` (2-8 slices of ~64 examples on a single-device CPU when
    #: nothing is mutated; measured 9-21% faster training steps) or an integer (1: off). Values
    #: are the same; see ``robustjax.nn.batch_chains``.
    batch_chains: int | str = "auto"

    def __post_init__(self):
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) \
                or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {self.num_classes!r}")
        mean, std = check_mean_std(self.mean, self.std)
        object.__setattr__(self, "mean", as_constant(mean))
        object.__setattr__(self, "std", as_constant(std))
        check_choice(self.pool_ties, name="pool_ties", allowed=POOL_TIES)
        check_batch_chains(self.batch_chains)
        self._check()
        super().__post_init__()

    def __call__(self, x, train: bool = False):
        """Logits ``[B, K]`` of ``x`` in [0, 1] (the subclass's :meth:`forward`; see
        ``batch_chains`` for how differentiated passes are run)."""
        return chained_call(self, x, train)

    def forward(self, x, train: bool = False):
        """The network (each subclass's ``nn.compact`` method)."""
        raise NotImplementedError

    def _check(self) -> None:
        """Subclasses validate their own hyper-parameters here (raise ``ValueError``)."""

    def _standardize(self, x):
        return Standardize(self.mean, self.std, name="standardize")(x)

    def _logits(self, x):
        return self.dense(features=self.num_classes, name="logits")(x)


def _flatten(x):
    return x.reshape(x.shape[0], -1)


class MLP(ZooModel):
    """Multi-layer perceptron with ``hidden_layers`` hidden layers of ``width`` ELU units.

    Farnia, Zhang & Tse (2019), §5.3 and Table 1 (paper 003): "1-hidden-layer and
    2-hidden-layer multi layer perceptrons (MLPs) with ELU activation and 512 hidden nodes in
    each layer", on CIFAR-10 and MNIST. The input is standardized (per channel of the last
    axis) and then flattened, so it accepts ``[B, D]`` as well as images.
    """

    hidden_layers: int = 1
    width: int = 512
    activation: str = "elu"

    def _check(self):
        check_positive_int(self.hidden_layers, name="hidden_layers", minimum=1)
        check_positive_int(self.width, name="width")
        check_choice(self.activation, name="activation", allowed=tuple(ACTIVATIONS))

    @nn.compact
    def forward(self, x, train: bool = False):
        act = ACTIVATIONS[self.activation]
        x = _flatten(self._standardize(x))
        for i in range(self.hidden_layers):
            x = act(self.dense(features=self.width, name=f"dense{i + 1}")(x))
        return self._logits(x)


#: Table 5 of Roth et al. (2018), SGR: [conv, conv, conv, conv, fc, fc, fc] widths.
SGR_WIDTHS = {
    "mnist": (32, 32, 64, 64, 200, 200),
    "cifar": (64, 64, 128, 128, 256, 256),
}


class SGRCNN(ZooModel):
    """The CNN of Roth, Nowozin, Lucchi & Hofmann (2018), SGR (paper 001), Table 5 / §7.4.

    conv3x3-ReLU, conv3x3-ReLU, maxpool 2x2, conv3x3-ReLU, conv3x3-ReLU, maxpool 2x2,
    dense-ReLU, dense-ReLU, dense K. Widths ``width="mnist"``: [32, 32, 64, 64, 200, 200, K];
    ``width="cifar"``: [64, 64, 128, 128, 256, 256, K]. The paper states the models are
    "identical to those used in [3, 27]" (Carlini & Wagner 2017; Papernot et al. 2016), whose
    nets use unpadded ('VALID') 3x3 convolutions, 2x2/2 max-pooling and ReLU after the two
    hidden dense layers (Table 5 lists only "Dense" there; the cited nets have the ReLU).
    They also use dropout 0.5 during training, which Table 5 does not list: not included.
    MNIST 28x28: 28-26-24-12-10-8-4 -> 4*4*64 = 1024 features; CIFAR 32x32: 5*5*128 = 3200.
    """

    width: str = "mnist"
    padding: str = "VALID"

    def _check(self):
        check_choice(self.width, name="width", allowed=tuple(SGR_WIDTHS))
        check_choice(self.padding, name="padding", allowed=("VALID", "SAME"))

    @nn.compact
    def forward(self, x, train: bool = False):
        c1, c2, c3, c4, f1, f2 = SGR_WIDTHS[self.width]
        x = self._standardize(x)
        for i, c in enumerate((c1, c2, c3, c4)):
            x = nn.relu(self.conv(features=c, kernel_size=(3, 3), strides=(1, 1),
                                  padding=self.padding, name=f"conv{i + 1}")(x))
            if i in (1, 3):
                x = max_pool(x, (2, 2), (2, 2), padding="VALID", ties=self.pool_ties)
        x = _flatten(x)
        x = nn.relu(self.dense(features=f1, name="dense1")(x))
        x = nn.relu(self.dense(features=f2, name="dense2")(x))
        return self._logits(x)


class SOARCNN(ZooModel):
    """The four-layer CNN of Ma, Faghri & Farahmand (SOAR, paper 004), App. C.

    App. C: "kernel sizes = [3, 3, 3, 3], strides = [1, 1, 1, 1], and output channel size =
    [32, 32, 64, 64]. All layers use ReLU activation functions, and layer 2 and 4 are followed
    by max-pooling." (used on CIFAR-10; ResNet18 in the paper is only a transfer-attack source,
    Table 3, and is not part of the zoo). The appendix does not give the padding or the
    classifier head; our choice: 'VALID' convolutions, 2x2/2 max-pooling and a head of two
    ReLU dense layers of 200 units plus the K-way output, i.e. the Carlini-Wagner MNIST
    network, whose convolution stack is exactly these four layers (``hidden=()`` gives a
    single linear read-out instead). On CIFAR 32x32: 5*5*64 = 1600 features.
    """

    features: Sequence[int] = (32, 32, 64, 64)
    hidden: Sequence[int] = (200, 200)
    padding: str = "VALID"

    def _check(self):
        if len(tuple(self.features)) != 4:
            raise ValueError(f"features must list 4 channel counts; got {self.features!r}")
        for f in tuple(self.features) + tuple(self.hidden):
            check_positive_int(f, name="features/hidden")
        check_choice(self.padding, name="padding", allowed=("VALID", "SAME"))

    @nn.compact
    def forward(self, x, train: bool = False):
        x = self._standardize(x)
        for i, c in enumerate(self.features):
            x = nn.relu(self.conv(features=c, kernel_size=(3, 3), strides=(1, 1),
                                  padding=self.padding, name=f"conv{i + 1}")(x))
            if i in (1, 3):
                x = max_pool(x, (2, 2), (2, 2), padding="VALID", ties=self.pool_ties)
        x = _flatten(x)
        for i, h in enumerate(self.hidden):
            x = nn.relu(self.dense(features=h, name=f"dense{i + 1}")(x))
        return self._logits(x)


class CNN7(ZooModel):
    """The 7-layer CIFAR-10 CNN of Roth, Kilcher & Hofmann (paper 000), §5.1 and App. 7.3.

    The paper says only: "7 convolutional layers, augmented with BatchNorm, ReLU
    nonlinearities and MaxPooling", 93.5% clean test accuracy, a pre-trained model linked from
    the authors' code. Widths are not given in the paper; we follow the widely used
    pre-trained CIFAR-10 network of exactly that description (the ``cifar10`` model of the
    pytorch-playground collection, about 93.5-94% accuracy), which we take to be the one
    meant (an inference, not stated in the paper): with base width ``w = width`` (128),
    ``[w, w, M, 2w, 2w, M, 4w, 4w, M, 8w, M] -> dense K``; every convolution is 3x3 with
    bias ('SAME', except the last, 8w, which is unpadded) and is followed by BatchNorm
    *without* learned scale/offset and ReLU; M = 2x2/2 max-pool. On 32x32 inputs the last pool sees 2x2 and is a global max;
    we implement it as a global max-pool so the net also runs on 28x28 MNIST (28-14-7-3-1).
    ``width`` can be lowered for CPU-scale experiments; ``bn_affine=True`` adds the usual
    BatchNorm scale and offset.
    """

    width: int = 128
    bn_affine: bool = False

    def _check(self):
        check_positive_int(self.width, name="width")

    @nn.compact
    def forward(self, x, train: bool = False):
        w = self.width
        plan = [(w, "SAME"), (w, "SAME"), "M", (2 * w, "SAME"), (2 * w, "SAME"), "M",
                (4 * w, "SAME"), (4 * w, "SAME"), "M", (8 * w, "VALID")]
        x = self._standardize(x)
        i = 0
        for item in plan:
            if item == "M":
                x = max_pool(x, (2, 2), (2, 2), padding="VALID", ties=self.pool_ties)
                continue
            c, pad = item
            i += 1
            x = self.conv(features=c, kernel_size=(3, 3), strides=(1, 1), padding=pad,
                          name=f"conv{i}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                             epsilon=BN_EPSILON, use_scale=self.bn_affine,
                             use_bias=self.bn_affine, name=f"bn{i}")(x)
            x = nn.relu(x)
        x = global_max_pool(x, ties=self.pool_ties)
        return self._logits(x)


class AlexNetSmall(ZooModel):
    """The small AlexNet of Zhang, Bengio, Hardt, Recht & Vinyals (2017), used by Farnia et al.

    Farnia, Zhang & Tse (2019), paper 003, §5 and Table 1 ("AlexNet" / "ELU-AlexNet": "the
    AlexNet and Inception networks described by Zhang et al. (2016)"). Zhang et al. App. A:
    "two (convolution 5x5 -> max-pool 3x3 -> local response normalization) modules followed
    by two fully connected layers with 384 and 192 hidden units ... a 10-way linear layer",
    64 channels per convolution, 1,387,786 parameters on their 28x28x3 CIFAR crops (our
    test checks this count). Convolutions are 'SAME' with stride 1, pools 3x3 stride 2 with
    ``pool_padding='SAME'`` (Zhang / TensorFlow CIFAR-10 tutorial; gives the stated count);
    Farnia et al.'s code pools 'VALID' (``pool_padding='VALID'``).
    ``activation='elu'`` is Farnia's ELU-AlexNet. LRN (depth radius 4, bias 1, alpha 0.001/9,
    beta 0.75) is optional and off by default: it is not 1-Lipschitz-controlled, and Farnia
    et al.'s spectrally normalized AlexNet omits it (``lrn=True`` restores Zhang's net).
    """

    features: Sequence[int] = (64, 64)
    hidden: Sequence[int] = (384, 192)
    activation: str = "relu"
    pool_padding: str = "SAME"
    lrn: bool = False

    def _check(self):
        check_choice(self.activation, name="activation", allowed=tuple(ACTIVATIONS))
        check_choice(self.pool_padding, name="pool_padding", allowed=("VALID", "SAME"))
        for f in tuple(self.features) + tuple(self.hidden):
            check_positive_int(f, name="features/hidden")

    @nn.compact
    def forward(self, x, train: bool = False):
        act = ACTIVATIONS[self.activation]
        x = self._standardize(x)
        for i, c in enumerate(self.features):
            x = act(self.conv(features=c, kernel_size=(5, 5), strides=(1, 1), padding="SAME",
                              name=f"conv{i + 1}")(x))
            x = max_pool(x, (3, 3), (2, 2), padding=self.pool_padding)
            if self.lrn:
                x = local_response_normalization(x)
        x = _flatten(x)
        for i, h in enumerate(self.hidden):
            x = act(self.dense(features=h, name=f"dense{i + 1}")(x))
        return self._logits(x)


class ELUNet(ZooModel):
    """The MNIST ELU network of Sinha, Namkoong & Duchi (2018), used by Farnia et al. (paper 003).

    Farnia et al. §5.3 / Table 1 ("ELU-Net": "the ELU network described by Sinha et al."):
    conv 8x8, 64 filters, stride 2, 'SAME'; conv 6x6, 128, stride 2, 'VALID'; conv 5x5, 128,
    stride 1, 'VALID'; ELU after each; dense K. On 28x28 MNIST: 28-14-5-1, 128 features
    (paddings as in Farnia et al.'s code and the cleverhans basic CNN Sinha et al. adapt).
    ``filters`` is the first layer's width (the others are twice it).
    """

    filters: int = 64

    def _check(self):
        check_positive_int(self.filters, name="filters")

    @nn.compact
    def forward(self, x, train: bool = False):
        f = self.filters
        x = self._standardize(x)
        x = nn.elu(self.conv(features=f, kernel_size=(8, 8), strides=(2, 2), padding="SAME",
                             name="conv1")(x))
        x = nn.elu(self.conv(features=2 * f, kernel_size=(6, 6), strides=(2, 2),
                             padding="VALID", name="conv2")(x))
        x = nn.elu(self.conv(features=2 * f, kernel_size=(5, 5), strides=(1, 1),
                             padding="VALID", name="conv3")(x))
        return self._logits(_flatten(x))

