"""robustjax.core.compile: the CPU compiler options of training steps change speed, not values;
``jit`` (a user's own steps, any model) turns YNNPACK off by default, the library's train step
keeps XLA's default (the zoo convolution keeps slow kernel gradients away from YNNPACK)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from robustjax.core import compile as C
from robustjax.nn import create


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("ROBUSTJAX_CPU_YNNPACK", raising=False)
    flags = " ".join(f for f in __import__("os").environ.get("XLA_FLAGS", "").split()
                     if not f.startswith("--" + C.YNN_OPTION))
    monkeypatch.setenv("XLA_FLAGS", flags)


def _needs_option():
    if not C._option_supported():
        pytest.skip("this jaxlib's XLA:CPU has no YNNPACK option")


def test_default_options_and_the_ways_to_turn_ynnpack_on_and_off(monkeypatch):
    _needs_option()
    assert C.cpu_compiler_options() == {C.YNN_OPTION: ""}
    assert C.cpu_compiler_options(ynnpack=True) == {}
    assert C.cpu_compiler_options(ynnpack=False) == {C.YNN_OPTION: ""}
    assert C.cpu_compiler_options(ynnpack=False, platform="gpu") == {}
    assert C.cpu_compiler_options(ynnpack=False, platform="tpu") == {}
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "0")
    assert C.cpu_compiler_options() == {C.YNN_OPTION: ""}
    assert C.cpu_compiler_options(ynnpack=True) == {}
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "1")
    assert C.cpu_compiler_options() == {}
    # the user's own XLA_FLAGS setting of the option stays in charge
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "0")
    monkeypatch.setenv("XLA_FLAGS", f"--{C.YNN_OPTION}=dot")
    assert C.cpu_compiler_options() == {}


def test_ynnpack_setting_argument_then_environment_then_default(monkeypatch):
    assert C.ynnpack_setting(default=True) is True
    assert C.ynnpack_setting(default=False) is False
    assert C.ynnpack_setting(False, default=True) is False
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "0")
    assert C.ynnpack_setting(default=True) is False
    assert C.ynnpack_setting(True, default=False) is True
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "1")
    assert C.ynnpack_setting(default=False) is True


def test_library_train_step_keeps_ynnpack_and_user_jit_drops_it(monkeypatch):
    # jit_train_step on a zoo model compiles with XLA's default options (YNNPACK fusions
    # present in the compiled program), core.compile.jit of the same step without them
    _needs_option()
    from robustjax.core.sharding import data_mesh
    from robustjax.training.objectives import make_objective
    from robustjax.training.state import create_train_state
    from robustjax.training.step import jit_train_step, train_step

    model = create("sgr_cnn", 10, width="mnist")
    tx = optax.sgd(0.1)
    x = jnp.zeros((4, 28, 28, 1), jnp.float32)
    batch = (x, jnp.zeros((4,), jnp.int32))
    state = create_train_state(model, tx, key=jax.random.PRNGKey(0), input_shape=x.shape[1:])
    objective = make_objective("erm", model)
    lib = jit_train_step(objective=objective, tx=tx, mesh=data_mesh(), donate=False)
    user = C.jit(lambda s, b: train_step(s, b, objective=objective, tx=tx))
    assert "__ynn_fusion" in lib.lower(state, batch).compile().as_text()
    assert "__ynn_fusion" not in user.lower(state, batch).compile().as_text()
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "0")
    lib_off = jit_train_step(objective=objective, tx=tx, mesh=data_mesh(), donate=False)
    assert "__ynn_fusion" not in lib_off.lower(state, batch).compile().as_text()


def test_bad_settings_fail_loudly(monkeypatch):
    with pytest.raises(ValueError, match="ynnpack"):
        C.cpu_compiler_options(ynnpack="no")
    monkeypatch.setenv("ROBUSTJAX_CPU_YNNPACK", "off")
    with pytest.raises(ValueError, match="ROBUSTJAX_CPU_YNNPACK"):
        C.cpu_compiler_options()


def _cnn_and_grad():
    model = create("sgr_cnn", 10, width="mnist")
    x = jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 28, 1))
    y = jnp.arange(8) % 10
    params = model.init(jax.random.PRNGKey(1), x[:1])

    def grad(p, xx):
        return jax.grad(lambda q: optax.softmax_cross_entropy_with_integer_labels(
            model.apply(q, xx), y).mean())(p)

    return grad, params, x


def test_jit_without_ynnpack_drops_its_fusions_and_keeps_the_values():
    _needs_option()
    grad, params, x = _cnn_and_grad()
    plain = jax.jit(grad)
    ours = C.jit(grad, ynnpack=False)
    ours_text = ours.lower(params, x).compile().as_text()
    assert "__ynn_fusion" not in ours_text
    if "__ynn_fusion" not in plain.lower(params, x).compile().as_text():
        pytest.skip("XLA:CPU does not use YNNPACK here by default; nothing to compare")
    a, b = plain(params, x), ours(params, x)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(v), np.asarray(u), rtol=1e-4, atol=1e-6)
    # the default for a user's step is off too; ynnpack=True is plain jax.jit
    assert "__ynn_fusion" not in C.jit(grad).lower(params, x).compile().as_text()
    assert "__ynn_fusion" in C.jit(grad, ynnpack=True).lower(params, x).compile().as_text()


def test_explicit_compiler_options_win_and_other_jit_arguments_pass_through():
    _needs_option()
    grad, params, x = _cnn_and_grad()
    explicit = C.jit(grad, compiler_options={C.YNN_OPTION: ""})
    assert "__ynn_fusion" not in explicit.lower(params, x).compile().as_text()
    f = C.jit(lambda a, b: a * b, static_argnums=(1,), donate_argnums=())
    assert float(f(jnp.float32(2.0), 3)) == 6.0


def test_sharded_jit_targets_the_mesh_platform():
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    rep = NamedSharding(mesh, PartitionSpec())
    assert C._mesh_platform({"in_shardings": (rep,), "out_shardings": rep}) == "cpu"
    assert C._mesh_platform({}) is None
    f = C.jit(lambda a: a + 1, in_shardings=(rep,), out_shardings=rep)
    np.testing.assert_array_equal(np.asarray(f(jnp.arange(3.0))), [1.0, 2.0, 3.0])
