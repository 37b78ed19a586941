"""robustjax.units: a strength stated in a paper's input space means the same in [0, 1] pixels.

Each converted quantity is computed twice: by hand in the paper's space (the data standardized
explicitly, the formula run there) and in pixel space with the value the config resolves to; the
two must agree (GN value, WRM optimum δ, ℓ∞/ℓ2 ε-balls, DeepFool ρ). Exact (float64) where the
map is a per-channel-constant scaling (one channel); the per-image and unequal-channel cases are
checked against the bounds the module documents. Every paper config lists its strengths in the
paper's units and in pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks, regularizers, units
from robustjax.configs import base_config, load_config
from robustjax.data import dataset_stats
from robustjax.data import load as load_data

ROOT = Path(__file__).resolve().parents[1] / "configs"
PAPERS = ("roth2019", "sgr2018", "farnia2019", "wen2020", "soar2020")
CONFIGS = sorted(str(p.relative_to(ROOT)) for d in PAPERS for p in (ROOT / d).glob("*.py"))

MU, SIGMA = (v[0] for v in dataset_stats("mnist-5k"))  # one channel: the map is exact


def _config(method, kwargs, space, dataset="mnist-5k"):
    config = base_config()
    config.dataset = dataset
    config.method = method
    config.method_kwargs = kwargs
    config.units.space = space
    return config


def _mlp(key, d_in, k=3):
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (d_in, 8), jnp.float64) / math.sqrt(d_in)
    w2 = jax.random.normal(k2, (8, k), jnp.float64)
    return lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w1) @ w2


def _data(shape=(4, 5, 5, 1), seed=0):
    x = jax.random.uniform(jax.random.PRNGKey(seed), shape, jnp.float64)
    y = jnp.arange(shape[0]) % 3
    return x, y


def test_gn_penalty_paper_space_equals_pixel_space():
    with jax.enable_x64(True):
        x, y = _data()
        f_paper = _mlp(jax.random.PRNGKey(1), 25)
        f_pixel = lambda x: f_paper((x - MU) / SIGMA)  # noqa: E731  the model standardizes inside
        lam = 5.0
        # by hand: ½‖∇_z log φ_y‖² with z = (x − μ)/σ
        z = (x - MU) / SIGMA

        @jax.jit
        def by_hand(z):
            g = jax.grad(lambda z: jnp.sum(jnp.take_along_axis(
                jax.nn.log_softmax(f_paper(z)), y[:, None], 1)))(z)
            return jnp.mean(0.5 * jnp.sum(g.reshape(4, -1) ** 2, 1))

        paper = lam * float(by_hand(z))
        kwargs, rows = units.resolve_method_kwargs(_config("gn", {"lam": lam}, "standardized"))
        assert kwargs["lam"] == pytest.approx(lam * SIGMA**2, rel=1e-12)
        assert rows[0].scale.exact
        gn_pixel = float(jax.jit(lambda x: regularizers.gradient_norm_penalty(f_pixel, x, y))(x))
        assert kwargs["lam"] * gn_pixel == pytest.approx(paper, rel=1e-10)
        # unconverted (the pre-issue-14 reading) it is 1/σ² = 10.5 times the paper's penalty
        assert lam * gn_pixel / paper == pytest.approx(1 / SIGMA**2, rel=1e-10)


def test_wrm_optimum_paper_space_equals_pixel_space():
    """WRM's maximizer of ℓ(x + δ) − γ‖δ‖² satisfies δ = ∇ℓ(x + δ)/(2γ); in the paper's space by
    fixed-point iteration, in pixels by ``attacks.wrm`` with the converted γ: δ_x = σ·δ_z."""
    with jax.enable_x64(True):
        x, y = _data()
        a = jax.random.normal(jax.random.PRNGKey(2), (25, 3), jnp.float64) * 0.2
        f_paper = lambda z: z.reshape(z.shape[0], -1) @ a  # noqa: E731
        f_pixel = lambda x: f_paper((x - MU) / SIGMA)  # noqa: E731
        gamma = 2.0

        def ce(z):
            return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(f_paper(z)), y[:, None], 1))

        z = (x - MU) / SIGMA
        delta_z = jax.lax.fori_loop(0, 200, lambda _, d: jax.grad(ce)(z + d) / (2 * gamma),
                                    jnp.zeros_like(z))
        kwargs, _ = units.resolve_method_kwargs(
            _config("adversarial", {"attack": "wrm", "gamma": gamma}, "standardized"))
        assert kwargs["gamma"] == pytest.approx(gamma / SIGMA**2, rel=1e-12)
        # step_size=1 turns the attack's update into the same fixed-point iteration
        x_adv = attacks.wrm(f_pixel, x, y, gamma=kwargs["gamma"], steps=200, step_size=1.0, clip=None)
        np.testing.assert_allclose(np.asarray(x_adv - x), SIGMA * np.asarray(delta_z), rtol=1e-9,
                                   atol=1e-12)
        assert float(jnp.max(jnp.abs(delta_z))) > 1e-3


@pytest.mark.parametrize("norm", [2, math.inf])
def test_eps_ball_paper_space_equals_pixel_space(norm):
    """Binary linear model: the loss maximizer over the paper's ε-ball is ε·w/‖w‖ (ℓ2) or
    ε·sign(w) (ℓ∞) in z; PGD in pixels with the converted ε and step lands on σ times it."""
    with jax.enable_x64(True):
        x, _ = _data()
        w = jax.random.normal(jax.random.PRNGKey(3), (25,), jnp.float64)
        f_paper = lambda z: jnp.stack([jnp.zeros(z.shape[0]), z.reshape(z.shape[0], -1) @ w], 1)  # noqa: E731
        f_pixel = lambda x: f_paper((x - MU) / SIGMA)  # noqa: E731
        y = jnp.zeros(4, jnp.int32)
        eps, step = (1.75, 1.0) if norm == 2 else (0.3, 0.2)
        paper = eps * (w / jnp.linalg.norm(w) if norm == 2 else jnp.sign(w))
        attack = "pgd_l2" if norm == 2 else "pgd_linf"
        kwargs, _ = units.resolve_method_kwargs(_config(
            "adversarial", {"attack": attack, "eps": eps, "step_size": step}, "standardized"))
        assert (kwargs["eps"], kwargs["step_size"]) == pytest.approx((eps * SIGMA, step * SIGMA))
        x_adv = attacks.pgd(f_pixel, x, y, eps=kwargs["eps"], norm=norm,
                            step_size=kwargs["step_size"], steps=5, random_start=False, clip=None)
        np.testing.assert_allclose(np.asarray(x_adv - x).reshape(4, -1),
                                   np.broadcast_to(SIGMA * np.asarray(paper), (4, 25)),
                                   rtol=1e-9, atol=1e-12)


def test_deepfool_rho_paper_space_equals_pixel_run():
    """DeepFool in the paper's space by hand (on z) and in pixels (on x) with ρ reported through
    ``units.space_transform``: the iterates map exactly, so ρ_paper agrees to float64 precision;
    the pixel ρ is a different number (the ratio is not scale-free: ‖x‖ ≠ σ‖z‖)."""
    with jax.enable_x64(True):
        x, _ = _data(seed=4)
        f_paper = _mlp(jax.random.PRNGKey(5), 25)
        f_pixel = lambda x: f_paper((x - MU) / SIGMA)  # noqa: E731
        z = (x - MU) / SIGMA
        _, r_z = attacks.deepfool(f_paper, z, clip=None)
        paper = np.mean(np.linalg.norm(np.asarray(r_z).reshape(4, -1), axis=1)
                        / np.linalg.norm(np.asarray(z).reshape(4, -1), axis=1))
        config = _config("erm", {}, "pixel")
        config.units.rho_space = "standardized"
        out = attacks.deepfool_robustness(
            f_pixel, x, clip=None, to_space=units.space_transform(config.units.rho_space, "mnist-5k"))
        assert float(out.rho_space) == pytest.approx(paper, rel=1e-9)
        assert float(out.fooled) == 1.0
        assert abs(float(out.rho) - paper) > 0.05 * paper


def test_per_image_transform_and_rho():
    x = jax.random.uniform(jax.random.PRNGKey(6), (3, 4, 4, 3))
    t = units.space_transform("whitened")  # alias of per_image
    z = np.asarray(t(x)).reshape(3, -1)
    np.testing.assert_allclose(z.mean(1), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), math.sqrt(48), rtol=1e-5)
    # a constant image has std 0: divided by the 1/√D floor, never NaN
    assert np.all(np.isfinite(np.asarray(t(jnp.ones((1, 4, 4, 3))))))
    np.testing.assert_allclose(np.asarray(units.space_transform("shifted")(x)), np.asarray(x) - 0.5)


def test_per_image_assumption_on_mnist5k():
    """``per_image`` treats the non-linear per-image standardization T(x) = (x − m(x))/s(x) as a
    scaling by the data set's std. Per example the input gradient does scale by the image's own
    std (``‖∇ₓ‖ ≤ ‖∇_z‖/s(x)``, equal up to the projection removing the image's mean and its own
    direction); a single s is therefore exact only on average. On mnist-5k digits: the RMS
    per-image std is 1 % from the data set's, and the GN penalty through the exact map is
    E[s̄²/s(x)²] − 1 ≈ 13 % (this batch: ~20 %) above the paper's (the spread of s(x))."""
    images = np.asarray(load_data("mnist-5k", "train").images)
    s_img = units.per_image_rms_std(images)
    assert s_img == pytest.approx(0.3054, abs=5e-4)
    assert units.pixel_scale("per_image", "mnist-5k").s == pytest.approx(SIGMA)
    assert abs(s_img / SIGMA - 1) < 0.012
    with jax.enable_x64(True):
        x = jnp.asarray(images[:64], jnp.float64)
        y = jnp.arange(64) % 3
        f_paper = _mlp(jax.random.PRNGKey(7), 784)
        t = units.space_transform("per_image")
        gx, gz = jax.jit(lambda x: (
            2 * regularizers.gradient_norm_penalty(lambda x: f_paper(t(x)), x, y, reduction="none"),
            2 * regularizers.gradient_norm_penalty(f_paper, t(x), y, reduction="none")))(x)
        s_x = np.asarray(x).reshape(64, -1).std(axis=1)
        per_example = np.asarray(gx) * s_x**2 / np.asarray(gz)  # ‖∇ₓ‖² s(x)² / ‖∇_z‖²
        assert np.all(per_example <= 1 + 1e-9) and np.all(per_example > 0.9)
        lam_px, = (r.pixel for r in units.conversions("gn", {"lam": 1.0}, space="per_image",
                                                        dataset="mnist-5k"))
        ratio = lam_px * float(np.sum(gx)) / float(np.sum(gz))
        jensen = float(np.sum(SIGMA**2 / s_x**2 * per_example * np.asarray(gz)) / np.sum(gz))
        assert ratio == pytest.approx(jensen, rel=1e-9)
        assert 1.0 < ratio < 1.3


def test_unequal_channel_stds_use_the_rms_between_the_bounds():
    """CIFAR10's per-channel stds differ: the paper's ℓ2 ball is an ellipsoid in pixels. The
    isotropic pixel radius ε·s (s = RMS σ_c) lies between the inscribed and circumscribed balls
    and has the mean squared length of an isotropic paper-space perturbation of norm ε."""
    std = np.asarray(dataset_stats("cifar10")[1])
    sc = units.pixel_scale("standardized", "cifar10")
    assert not sc.exact and "differ" in sc.note
    assert sc.s == pytest.approx(math.sqrt(np.mean(std**2)), rel=1e-12)
    assert std.min() < sc.s < std.max()
    u = np.random.default_rng(0).normal(size=(20000, 8, 8, 3))
    u /= np.linalg.norm(u.reshape(len(u), -1), axis=1)[:, None, None, None]
    pixel_sq = np.mean(np.sum((1.75 * u * std).reshape(len(u), -1) ** 2, axis=1))
    assert math.sqrt(pixel_sq) == pytest.approx(units.convert(1.75, "length", sc), rel=2e-3)
    # ℓ∞: the converted half-width lies between the per-channel half-widths ε·σ_c
    assert 0.1 * std.min() < units.convert(0.1, "length", sc) < 0.1 * std.max()


def test_relative_radius_in_each_space():
    images = np.full((3, 4, 4, 1), 0.75)
    kw = {"attack": "wrm", "gamma": 0.04, "relative_to_mean_norm": True}
    pix, = units.conversions("adversarial", kw, space="pixel", images=images)
    assert pix.paper == pytest.approx(0.04 * 0.75 * 4) and pix.pixel == pix.paper
    sh, = units.conversions("adversarial", kw, space="shifted", images=images)
    assert sh.pixel == pytest.approx(0.04 * 0.25 * 4)
    # per_image: every standardized image has norm √D, no data needed; γ ÷ s²
    pi, = units.conversions("adversarial", kw, space="per_image", dataset="mnist-5k",
                            input_shape=(4, 4, 1))
    assert pi.paper == pytest.approx(0.04 * 4) and pi.pixel == pytest.approx(0.16 / SIGMA**2)
    st, = units.conversions("adversarial", kw, space="standardized", dataset="mnist-5k", images=images)
    assert st.paper == pytest.approx(0.04 * 4 * (0.75 - MU) / SIGMA)
    # without the images a pixel-space relative radius cannot be resolved: loud error
    config = _config("adversarial", kw, "pixel")
    with pytest.raises(ValueError, match="training images"):
        units.resolve_method_kwargs(config)


def test_bad_units_fail_loudly():
    with pytest.raises(ValueError, match="units.space"):
        units.resolve_method_kwargs(_config("gn", {"lam": 1.0}, "zscore"))
    with pytest.raises(ValueError, match="relative_to_mean_norm"):
        units.conversions("gn", {"lam": 1.0, "relative_to_mean_norm": True})
    with pytest.raises(ValueError, match="dataset"):
        units.pixel_scale("standardized")
    # unit-free strengths are not converted
    assert units.conversions("sgr", {"lam": 0.5, "eps": 0.1}, space="per_image",
                             dataset="mnist-5k")[0].name == "eps"
    assert units.method_quantities("global_snr", {}) == {}
    assert units.method_quantities("snr", {"form": "jacobian"})["lam"] == "squared_length"


# ---------------------------------------------------------------------------------------------
# Every paper config: its strengths in the paper's units and in pixels
# ---------------------------------------------------------------------------------------------

S_CIFAR = math.sqrt(np.mean(np.square([0.2470, 0.2435, 0.2616])))
S_SVHN = math.sqrt(np.mean(np.square([0.1980, 0.2010, 0.1970])))
ROOT_D = math.sqrt(32 * 32 * 3)
# Pixel values of the converted strengths, computed here from the papers' numbers.
CONVERTED = {
    "roth2019/cifar10_adversarial_pga_l2.py": {"eps": 1.75 * S_CIFAR, "step_size": 0.35 * S_CIFAR},
    "roth2019/cifar10_snr.py": {"eps": 1.75 * S_CIFAR},
    "sgr2018/mnist_gn.py": {"lam": 5.0 * 0.3081**2},
    "sgr2018/cifar10_gn_eps4.py": {"lam": 0.075 * S_CIFAR**2},
    "sgr2018/cifar10_gn_eps8.py": {"lam": 0.05 * S_CIFAR**2},
    "farnia2019/cifar10_fgm.py": {"eps": 0.05 * ROOT_D * S_CIFAR},
    "farnia2019/cifar10_pgm.py": {"eps": 0.05 * ROOT_D * S_CIFAR,
                                  "step_size": 2 * 0.05 / 15 * ROOT_D * S_CIFAR},
    "farnia2019/cifar10_pgm_linf.py": {"eps": 0.1 * S_CIFAR, "step_size": 2 * 0.1 / 15 * S_CIFAR},
    "farnia2019/cifar10_wrm.py": {"gamma": 0.002 * ROOT_D / S_CIFAR**2},
    "farnia2019/svhn_fgm.py": {"eps": 0.05 * ROOT_D * S_SVHN},
    "farnia2019/svhn_pgm.py": {"eps": 0.05 * ROOT_D * S_SVHN,
                               "step_size": 2 * 0.05 / 15 * ROOT_D * S_SVHN},
    "farnia2019/svhn_wrm.py": {"gamma": 0.002 * ROOT_D / S_SVHN**2},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_paper_config_lists_its_strengths(name):
    config = load_config(ROOT / name)
    shape = (28, 28, 1) if config.dataset == "mnist" else (32, 32, 3)
    # MNIST's relative radii are measured on pixels: the embedded mnist-5k digits stand in
    images = np.asarray(load_data("mnist-5k", "train").images[:500]) if config.dataset == "mnist" else None
    rows = units.conversions(config.method, dict(config.method_kwargs), space=config.units.space,
                             dataset=config.dataset, images=images, input_shape=shape)
    listing = units.format_conversions(rows, method=config.method)
    expected = CONVERTED.get(name, {})
    names = {r.name for r in rows}
    assert set(expected) <= names, (name, listing)
    for r in rows:
        assert f"method_kwargs.{r.name}" in listing
        assert r.paper is not None and r.pixel is not None, listing
        if r.name in expected:
            assert r.pixel == pytest.approx(expected[r.name], rel=2e-4), (name, r)
            assert config.units.space == "per_image" and r.pixel != r.paper
        else:
            assert config.units.space == "pixel" and r.pixel == r.paper, (name, r)
    # DeepFool's ρ: the SGR configs report it in the paper's per-image standardized space
    assert config.units.rho_space == ("per_image" if name.startswith("sgr2018") else "pixel")


def test_evaluation_suites_use_the_converted_radii():
    """The static suites of papers with standardized/whitened inputs hold pixel numbers; they
    equal robustjax.units' conversion of the papers' values."""
    from robustjax.evaluation import get_suite

    for suite, dataset in (("farnia-cifar10", "cifar10"), ("farnia-svhn", "svhn_cropped")):
        specs = {s.name: s for s in get_suite(suite)}
        for name in ("FGM", "PGM-15"):
            got = [float(e) for e in specs[name].eps]
            want = [units.conversions("adversarial", {"eps": r, "relative_to_mean_norm": True},
                                      space="per_image", dataset=dataset,
                                      input_shape=(32, 32, 3))[0].pixel for r in (0.025, 0.05, 0.1)]
            np.testing.assert_allclose(got, want, rtol=2e-4)
        gamma, = units.conversions("adversarial", {"gamma": 0.002, "relative_to_mean_norm": True},
                                   space="per_image", dataset=dataset, input_shape=(32, 32, 3))
        assert float(specs["WRM"].eps[0]) == pytest.approx(gamma.pixel, rel=2e-4)
    (pga,) = get_suite("roth-l2-pga")
    want = [units.convert(e, "length", units.pixel_scale("per_image", "cifar10"))
            for e in (0.25, 0.5, 1.0, 1.75, 2.5, 3.5)]
    np.testing.assert_allclose([float(e) for e in pga.eps], want, rtol=2e-4)
