"""The networks ``robustjax analyze`` measures: pytree-callables, φ^(L−1), the random-init baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax.analyze import ModelFunction, load_models
from robustjax.analyze.models import run_label
from robustjax.configs import apply_override, base_config
from robustjax.training.loop import build_run
from robustjax.training.state import create_train_state


@pytest.fixture(scope="module")
def mlp():
    config = base_config()
    for a in ("model=mlp", "model_kwargs={'width': 16}"):
        apply_override(config, a)
    run = build_run(config)
    state = create_train_state(run.model, optax.identity(), key=jax.random.PRNGKey(3), input_shape=run.input_shape)
    return run, {"params": state.params}


def test_logits_and_features_match_a_hand_written_forward_pass(mlp):
    run, variables = mlp
    x = jnp.asarray(run.test_data.images[:5])
    p = variables["params"]
    mean, std = np.asarray(run.model.mean), np.asarray(run.model.std)
    z = ((x - mean) / std).reshape(5, -1)
    hidden = jax.nn.elu(z @ p["dense1"]["kernel"] + p["dense1"]["bias"])
    logits = hidden @ p["logits"]["kernel"] + p["logits"]["bias"]
    f = ModelFunction(run.model, variables)
    np.testing.assert_allclose(f(x), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f.with_output("features")(x), hidden, rtol=1e-5, atol=1e-5)


def test_two_models_of_one_architecture_share_a_compiled_program(mlp):
    run, variables = mlp
    other = jax.tree_util.tree_map(lambda a: a * 0.5, variables)
    f, g = ModelFunction(run.model, variables), ModelFunction(run.model, other)
    assert jax.tree_util.tree_structure(f) == jax.tree_util.tree_structure(g)
    traces = []

    @jax.jit
    def apply(fn, x):
        traces.append(1)
        return fn(x)

    x = jnp.asarray(run.test_data.images[:2])
    np.testing.assert_allclose(apply(g, x), g(x), rtol=1e-6)
    apply(f, x)
    assert len(traces) == 1


def test_features_of_a_model_without_a_logits_layer_is_an_error():
    import flax.linen as nn

    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(3, name="out")(x)

    m = Plain()
    v = m.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="no layer named 'logits'"):
        ModelFunction(m, v, "features")(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="output must be one of"):
        ModelFunction(m, v, "hidden")


def test_run_label_names_the_method_when_the_directory_does_not():
    c = base_config()
    assert run_label("/x/erm", c) == "erm"
    apply_override(c, "method=adversarial")
    apply_override(c, "method_kwargs={'attack': 'pgd_linf', 'eps': 0.1}")
    assert run_label("/x/pgd", c) == "pgd (adversarial pgd_linf)"


def test_load_models_rejects_a_missing_run_and_repeated_workdirs(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_models(tmp_path / "nothing")
    with pytest.raises(ValueError, match="--compare must name other runs"):
        load_models(tmp_path, [tmp_path])
    with pytest.raises(ValueError, match="baseline must be one of"):
        load_models(tmp_path, baseline="zeros")
