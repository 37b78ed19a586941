"""Tests of robustjax.analysis.layer_spectra against explicit operator matrices."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.analysis.layer_spectra import collect_layers, network_spectral_report, penalty_layers
from robustjax.core.power import conv_apply
from robustjax.nn.spectral_norm import SpectralNormConv, SpectralNormDense
from robustjax.regularizers.global_spectral_norm import (
    ConvGeometry,
    global_spectral_penalty,
    global_spectral_state_init,
)


class Net(nn.Module):
    conv: type = nn.Conv
    dense: type = nn.Dense

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(self.conv(features=4, kernel_size=(3, 3), strides=2, padding="SAME", name="c1")(x))
        x = nn.relu(self.conv(features=5, kernel_size=(2, 2), padding=((1, 0), (0, 1)), name="c2")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        return self.dense(features=3, name="out")(x.reshape(x.shape[0], -1))


def _explicit_sigma(kernel, g: ConvGeometry):
    d = int(np.prod(g.input_shape))
    basis = jnp.eye(d).reshape((d,) + g.input_shape)
    mat = conv_apply(basis, kernel, strides=g.strides, padding=g.padding, dilation=g.dilation).reshape(d, -1)
    return np.linalg.svd(np.asarray(mat, np.float64), compute_uv=False)[0]


def test_collect_layers_and_report_match_explicit_svd():
    model = Net()
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
    layers = collect_layers(model, variables, (8, 8, 3))
    assert [info.name for info in layers] == ["c1", "c2", "out"]
    assert layers[0].geometry.input_shape == (8, 8, 3) and layers[0].geometry.strides == (2, 2)
    assert layers[1].geometry.input_shape == (4, 4, 4)
    assert layers[1].geometry.padding == ((1, 0), (0, 1))
    assert layers[2].input_shape == (2 * 2 * 5,)
    report = network_spectral_report(model, variables, (8, 8, 3), iters=1000)
    p = variables["params"]
    expected = [
        _explicit_sigma(p["c1"]["kernel"], layers[0].geometry),
        _explicit_sigma(p["c2"]["kernel"], layers[1].geometry),
        np.linalg.norm(np.asarray(p["out"]["kernel"], np.float64), 2),
    ]
    got = [r["sigma_operator"] for r in report.rows]
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    resh = [np.linalg.norm(np.asarray(p[n]["kernel"]).reshape(-1, p[n]["kernel"].shape[-1]), 2) for n in ("c1", "c2", "out")]
    np.testing.assert_allclose([r["sigma_reshape"] for r in report.rows], resh, rtol=1e-4)
    np.testing.assert_allclose(report.product_operator, np.prod(expected), rtol=3e-3)
    np.testing.assert_allclose(report.rows[2]["sv_std"], np.std(np.linalg.svd(np.asarray(p["out"]["kernel"]), compute_uv=False)), rtol=1e-4)
    text = str(report)
    assert "c1" in text and "product of operator norms" in text


def test_report_of_sn_model_uses_bounded_kernels():
    beta = 0.7
    sn = dict(beta=beta, init_iters=300)
    model = Net(conv=functools.partial(SpectralNormConv, **sn), dense=functools.partial(SpectralNormDense, **sn))
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
    report = network_spectral_report(model, variables, (8, 8, 3), iters=1000)
    sig = np.array([r["sigma_operator"] for r in report.rows])
    assert np.all(sig <= beta * (1 + 1e-2)) and np.all(sig >= 0.9 * beta), sig
    assert all(r["spectrally_normalized"] and r["beta"] == beta for r in report.rows)


def test_penalty_layers_feed_the_global_regularizer():
    model = Net()
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
    infos = collect_layers(model, variables, (8, 8, 3))
    params = variables["params"]
    state = global_spectral_state_init(penalty_layers(params, infos), key=jax.random.PRNGKey(1), iters=500)

    @jax.jit
    def loss(p, state):
        return global_spectral_penalty(penalty_layers(p, infos), state, lam=2.0)

    (pen, _), g = jax.value_and_grad(loss, has_aux=True)(params, state)
    report = network_spectral_report(model, variables, (8, 8, 3), iters=1000)
    np.testing.assert_allclose(pen, sum(r["sigma_operator"] ** 2 for r in report.rows), rtol=2e-3)
    assert set(g) == set(params) and float(jnp.abs(g["c1"]["kernel"]).sum()) > 0


def test_bad_input_shape():
    model = Net()
    variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="input_shape"):
        network_spectral_report(model, variables, (8, 0, 3))
    with pytest.raises(ValueError, match="iters"):
        network_spectral_report(model, variables, (8, 8, 3), iters=0)


def _explicit_matrix(kernel, g: ConvGeometry):
    d = int(np.prod(g.input_shape))
    basis = jnp.eye(d).reshape((d,) + g.input_shape)
    mat = conv_apply(basis, kernel, strides=g.strides, padding=g.padding, dilation=g.dilation).reshape(d, -1)
    return np.asarray(mat, np.float64)


def test_report_strided_singular_values_exact_and_circular():
    import json

    model = Net()
    variables = model.init(jax.random.PRNGKey(3), jnp.ones((1, 8, 8, 3)))
    layers = collect_layers(model, variables, (8, 8, 3))
    p = variables["params"]
    report = network_spectral_report(model, variables, (8, 8, 3), iters=500)
    for row, info in zip(report.rows[:2], layers[:2]):
        mat = _explicit_matrix(p[info.name]["kernel"], info.geometry)
        s = np.linalg.svd(mat, compute_uv=False)
        assert row["sv_method"] == "exact-matrix" and row["sv_exact"]
        np.testing.assert_allclose(row["sv_std"], np.std(s), rtol=1e-5)
        np.testing.assert_allclose(row["sigma_operator"], s[0], rtol=1e-5)
        np.testing.assert_allclose(row["frobenius"], np.linalg.norm(mat), rtol=1e-5)
    np.testing.assert_allclose(report.rows[2]["frobenius"], np.linalg.norm(np.asarray(p["out"]["kernel"])), rtol=1e-5)
    # Forced onto the circular path: the strided SAME conv gets the (approximate) polyphase
    # spectrum, σ_max still the true operator's (power iteration), and the table says so.
    approx = network_spectral_report(model, variables, (8, 8, 3), iters=500, sv_max_dim=1)
    assert approx.rows[0]["sv_method"] == "polyphase-circular" and not approx.rows[0]["sv_exact"]
    assert approx.rows[1]["sv_method"] == "fft-circular" and not approx.rows[1]["sv_exact"]
    assert approx.rows[0]["sv_std"] is not None
    np.testing.assert_allclose(approx.rows[0]["sigma_operator"], report.rows[0]["sigma_operator"], rtol=1e-3)
    assert "polyphase-circular (approx)" in str(approx)
    blob = json.loads(json.dumps(approx.to_json()))
    assert blob["summary"]["sv_methods"][0] == "polyphase-circular (approx)" and len(blob["rows"]) == 3
    with pytest.raises(ValueError, match="sv_max_dim"):
        network_spectral_report(model, variables, (8, 8, 3), sv_max_dim=0)
