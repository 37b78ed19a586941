"""Every method's objective (the package robustjax.training.objectives: its modules
robustjax.training.objectives.base, robustjax.training.objectives.adversarial, .spectral,
.gradient and .soar): runs jitted in the train step, matches an independent computation of its loss, keeps gradients where the papers put them, and rejects bad hyper-parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax import attacks, nn as rj_nn, regularizers
from robustjax.training.objectives import (
    init_method_state,
    make_objective,
)
from robustjax.training.state import create_train_state
from robustjax.training.step import train_step

KEY = jax.random.PRNGKey(0)


def _setup(model_name="mlp", batch=8, **model_kw):
    model = rj_nn.create(model_name, 3, **model_kw)
    x = jax.random.uniform(jax.random.PRNGKey(1), (batch, 6, 6, 1))
    y = jnp.arange(batch) % 3
    return model, x, y


def _state(model, x, method, **kw):
    tx = optax.sgd(0.1)
    state = create_train_state(model, tx, key=KEY, input_shape=x.shape[1:])
    ms = init_method_state(method, model=model, variables=state.variables(), input_shape=x.shape[1:],
                           batch_size=x.shape[0], key=KEY, data_variance=0.1, **kw)
    return state.replace(method_state=ms), tx


METHODS = [
    ("erm", {}),
    ("adversarial", {"attack": "pgd_linf", "eps": 0.1, "steps": 3}),
    ("adversarial", {"attack": "pgd_l2", "eps": 0.5, "steps": 3, "random_start": False}),
    ("adversarial", {"attack": "fgsm", "eps": 0.1, "lam": 0.5, "labels": "predicted"}),
    ("adversarial", {"attack": "fgm", "eps": 0.5}),
    ("adversarial", {"attack": "wrm", "gamma": 1.0, "steps": 3}),
    ("snr", {"form": "sos", "eps": 0.5, "iters": 3}),
    ("snr", {"form": "jacobian", "iters": 3}),
    ("global_snr", {"lam": 1e-2}),
    ("sgr", {"lam": 0.5, "kind": "function", "source": "fgsm", "eps": 0.1}),
    ("sgr", {"lam": 0.5, "kind": "diagonal", "source": "sign", "eps": 0.1}),
    ("gn", {"lam": 1.0}),
    ("soar", {"lam": 0.5, "eps": 0.1, "alpha": 0.1}),
]


@pytest.mark.parametrize("method, kw", METHODS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(METHODS)])
def test_every_method_trains_jitted_with_finite_loss(method, kw):
    model, x, y = _setup("sgr_cnn" if method == "global_snr" else "mlp", **({"width": "mnist"} if method == "global_snr" else {}))
    if method == "global_snr":  # conv layers: the penalty runs power iterations on conv operators
        x = jax.random.uniform(jax.random.PRNGKey(1), (8, 16, 16, 1))
    state, tx = _state(model, x, method, **kw)
    objective = make_objective(method, model, **kw)
    step = jax.jit(lambda s, b: train_step(s, b, objective=objective, tx=tx))
    losses = []
    for _ in range(3):
        state, metrics = step(state, (x, y))
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert int(state.step) == 3
    assert all(np.all(np.isfinite(np.asarray(l))) for l in jax.tree_util.tree_leaves(state.params))


def test_adversarial_loss_is_cross_entropy_at_the_pgd_point():
    model, x, y = _setup()
    state, _ = _state(model, x, "adversarial")
    kw = {"attack": "pgd_linf", "eps": 0.1, "steps": 3, "step_size": 0.05, "random_start": False}
    loss, aux = make_objective("adversarial", model, **kw)(state.params, state, (x, y), KEY)
    logits_fn = lambda z: model.apply(state.variables(), z, train=False)
    x_adv = attacks.pgd(logits_fn, x, y, eps=0.1, norm=jnp.inf, step_size=0.05, steps=3, random_start=False)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits_fn(x_adv), y).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert float(expected) > float(optax.softmax_cross_entropy_with_integer_labels(logits_fn(x), y).mean())


def test_adversarial_sum_form_is_roths_eq_14():
    """``combine="sum"``: ℓ(x) + λ·ℓ(x_adv) with λ > 1 allowed (Roth et al. 2019 eq. 14)."""
    model, x, y = _setup()
    state, _ = _state(model, x, "adversarial")
    kw = {"attack": "pgd_linf", "eps": 0.1, "steps": 2, "step_size": 0.05, "random_start": False}
    loss, _ = make_objective("adversarial", model, lam=2.0, combine="sum", **kw)(
        state.params, state, (x, y), KEY)
    f = lambda z: model.apply(state.variables(), z, train=False)  # noqa: E731
    x_adv = attacks.pgd(f, x, y, eps=0.1, norm=jnp.inf, step_size=0.05, steps=2, random_start=False)
    ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(f(z), y).mean()  # noqa: E731
    np.testing.assert_allclose(loss, ce(x) + 2.0 * ce(x_adv), rtol=1e-5)
    with pytest.raises(ValueError, match="combine='sum'"):
        make_objective("adversarial", model, lam=2.0, **kw)
    with pytest.raises(ValueError, match="combine"):
        make_objective("adversarial", model, combine="max", **kw)


def test_gn_loss_and_parameter_gradient_match_independent_computation():
    model, x, y = _setup()
    state, _ = _state(model, x, "gn")
    objective = make_objective("gn", model, lam=2.0)

    def reference(params):
        f = lambda z: model.apply({"params": params}, z, train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(f(x), y).mean()
        g = jax.vmap(jax.grad(lambda xi, yi: jax.nn.log_softmax(f(xi[None]))[0, yi]))(x, y)
        return ce + 2.0 * 0.5 * jnp.mean(jnp.sum(g.reshape(len(x), -1) ** 2, axis=1))

    (loss, _), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(state.params, state, (x, y), KEY)
    ref_loss, ref_grads = jax.jit(jax.value_and_grad(reference))(state.params)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("start", ["random", "previous"])
def test_snr_start_and_penalty_matches_regularizer(start):
    """``start="random"`` (default): the power iteration starts from N(0, I) drawn from the
    step's key; ``"previous"``: from the state's vectors. Either way the penalty is the
    regularizer's from that start and the state keeps the new vectors."""
    model, x, y = _setup()
    state, _ = _state(model, x, "snr", iters=4)
    objective = make_objective("snr", model, form="jacobian", lam=0.1, iters=4,
                               **({} if start == "random" else {"start": start}))
    loss, aux = objective(state.params, state, (x, y), KEY)
    logits_fn = lambda z: model.apply(state.variables(), z, train=False)
    v0 = jax.random.normal(KEY, x.shape) if start == "random" else state.method_state["v"]
    penalty, v = regularizers.jacobian_spectral_penalty(logits_fn, x, iters=4, v0=v0)
    np.testing.assert_allclose(aux["metrics"]["penalty"], penalty, rtol=1e-5)
    np.testing.assert_allclose(aux["method_state"]["v"], v, rtol=1e-5, atol=1e-6)
    assert not np.allclose(aux["method_state"]["v"], state.method_state["v"])


def _soar_reference_parts(model, params, x, y, key, *, lam, eps, alpha):
    """Straightforward SOAR gradient parts on the whole batch, ∇CE(x') and λ∇R(x') (one jitted
    program; the App. C clip is applied by hand in the test)."""
    point_key, reg_key = jax.random.split(key)
    f = lambda p: (lambda v: model.apply({"params": p}, v, train=False))  # noqa: E731

    @jax.jit
    def parts(params):
        # PGD1 point: one step of size α from x + η (§4.2, after eq. 11)
        x_eval = regularizers.soar_evaluation_point(f(params), x, y, eps=eps, key=point_key,
                                                    step_size=alpha)
        g_ce = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
            f(p)(x_eval), y).mean())(params)
        g_r = jax.grad(lambda p: lam * regularizers.soar_penalty(
            f(p), x_eval, y, eps=eps, alpha=alpha, key=reg_key))(params)
        return g_ce, g_r

    return parts(params)


@pytest.fixture(scope="module")
def soar_reference():
    model, x, y = _setup(batch=8)
    state, _ = _state(model, x, "soar")
    kw = dict(lam=0.5, eps=0.1, alpha=0.15)
    g_ce, g_r = _soar_reference_parts(model, state.params, x, y, KEY, **kw)
    return model, state, x, y, kw, g_ce, g_r


@pytest.mark.parametrize("microbatches", [1, 2, 4])
def test_soar_gradient_is_the_full_batch_gradient_with_the_papers_clip(microbatches, soar_reference):
    # App. C: the gradient of λR is clipped to ℓ2 norm 30 before it joins the loss gradient; the
    # objective computes it in microbatches inside a custom_vjp. Reference: plain jax.grad of
    # the whole batch, clipped by hand. Once with the clip inactive, once active.
    model, state, x, y, kw, g_ce, g_r = soar_reference
    unclipped_norm = float(optax.tree.norm(g_r))
    for reg_grad_clip in (1e9, 0.5 * unclipped_norm):
        scale = min(1.0, reg_grad_clip / unclipped_norm)
        ref = jax.tree_util.tree_map(lambda a, b: a + scale * b, g_ce, g_r)
        objective = make_objective("soar", model, reg_grad_clip=reg_grad_clip,
                                   microbatches=microbatches, **kw)
        got = jax.jit(jax.grad(lambda p: objective(p, state, (x, y), KEY)[0]))(state.params)
        # the FD Hessian-vector product divides gradient differences by h ≤ α: float32 rounding
        # of the two summation orders shows at ~1e-4 of each leaf's scale
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
            a, b = np.asarray(a), np.asarray(b)
            assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b)), np.max(np.abs(a - b)) / np.max(np.abs(b))
    with pytest.raises(ValueError, match="microbatches"):
        make_objective("soar", model, microbatches=3, **kw)(state.params, state, (x, y), KEY)


@pytest.mark.parametrize(
    "method, kw, match",
    [
        ("adversarial", {"attack": "pgd_linf", "eps": 0.1, "lam": -0.1}, "lam"),
        ("adversarial", {"attack": "cw", "eps": 0.1}, "attack"),
        ("adversarial", {"attack": "pgd_linf", "eps": 0.0}, "eps"),
        ("adversarial", {"attack": "wrm"}, "gamma"),
        ("snr", {"lam": -1.0}, "lam"),
        ("snr", {"eps": 0.0}, "eps"),
        ("snr", {"start": "warm"}, "start"),
        ("sgr", {"source": "deepfool"}, "source"),
        ("sgr", {"kind": "sparse"}, "kind"),
        ("soar", {"eps": -1.0}, "eps"),
        ("gn", {"lam": -2.0}, "lam"),
        ("nope", {}, "method"),
    ],
)
def test_bad_hyper_parameters(method, kw, match):
    model, _, _ = _setup()
    with pytest.raises(ValueError, match=match):
        make_objective(method, model, **kw)


# --- issue 7: GN / SGR share one forward pass (and one reverse sweep) for CE and g ----------

from robustjax.training.objectives import single_mode_logits_fn  # noqa: E402


def _reference_sgr(model, state, x, y, key, *, lam, source, eps, beta=0.1):
    """The straightforward SGR objective: train-mode CE + perturbations and penalty on
    separate inference-mode passes (what the objective computed before sharing)."""
    def loss_fn(params):
        logits = model.apply({"params": params}, x, train=True)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        frozen = lambda z: model.apply({"params": jax.lax.stop_gradient(params)}, z, train=False)
        xi = regularizers.perturbations(frozen, x, None, source=source, eps=eps, key=key, steps=3)
        cov = regularizers.covariance_update(state.method_state, xi, beta=beta)
        cov = jax.tree_util.tree_map(jax.lax.stop_gradient, cov)
        live = lambda z: model.apply({"params": params}, z, train=False)
        return ce + lam * regularizers.sgr_penalty(live, x, y, covariance=cov), cov
    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(state.params)


@pytest.mark.parametrize("source, kind", [("fgsm", "function"), ("sign", "diagonal"),
                                          ("gradient", "function"), ("pgd", "diagonal")])
def test_sgr_shared_forward_matches_straightforward_objective(source, kind):
    model = rj_nn.create("sgr_cnn", 3, width="mnist")
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 16, 16, 1))
    y = jnp.arange(6) % 3
    kw = {"lam": 0.5, "kind": kind, "source": source, "eps": 0.1, "steps": 3}
    state, _ = _state(model, x, "sgr", **kw)
    objective = make_objective("sgr", model, **kw)
    assert single_mode_logits_fn(model, state.params, state.model_state, x) is not None
    (loss, aux), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(state.params, state, (x, y), KEY)
    (ref_loss, ref_cov), ref_grads = _reference_sgr(model, state, x, y, KEY, lam=0.5, source=source, eps=0.1)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(aux["method_state"]), jax.tree_util.tree_leaves(ref_cov)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_sgr_uncentered_adds_the_first_order_term_of_eq_12():
    """``uncentered=True`` adds −λ·mean_i g_iᵀμ (SGR eq. 12), μ the rescaled running mean of the
    perturbations (``covariance_mean``) and g = ∇ₓ log φ_y at the data."""
    model, x, y = _setup(batch=6)
    kw = {"lam": 0.5, "kind": "diagonal", "source": "fgsm", "eps": 0.1}
    state, _ = _state(model, x, "sgr", **kw)
    centered, aux = make_objective("sgr", model, **kw)(state.params, state, (x, y), KEY)
    uncentered, _ = make_objective("sgr", model, uncentered=True, **kw)(state.params, state, (x, y), KEY)
    f = lambda z: model.apply({"params": state.params}, z, train=False)  # noqa: E731
    g = regularizers.log_likelihood_input_gradient(f, x, y)
    mu = regularizers.covariance_mean(aux["method_state"])
    first_order = float(jnp.mean(jnp.sum((g * mu).reshape(6, -1), axis=1)))
    assert abs(first_order) > 1e-6
    np.testing.assert_allclose(float(uncentered) - float(centered), -0.5 * first_order, rtol=1e-4)


def test_gn_shared_forward_matches_straightforward_objective_on_a_cnn():
    model = rj_nn.create("sgr_cnn", 3, width="mnist")
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 16, 16, 1))
    y = jnp.arange(6) % 3
    state, _ = _state(model, x, "gn")
    objective = make_objective("gn", model, lam=2.0)

    def reference(params):
        ce = optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": params}, x, train=True), y).mean()
        live = lambda z: model.apply({"params": params}, z, train=False)
        return ce + 2.0 * regularizers.gradient_norm_penalty(live, x, y)

    (loss, aux), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(state.params, state, (x, y), KEY)
    ref_loss, ref_grads = jax.jit(jax.value_and_grad(reference))(state.params)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_single_mode_logits_fn_only_for_stateless_mode_independent_models():
    import flax.linen as nn

    class TrainScaled(nn.Module):  # no mutable state, but train changes the function
        @nn.compact
        def __call__(self, x, train=False):
            z = nn.Dense(3)(x.reshape(x.shape[0], -1))
            return 2.0 * z if train else z

    x = jnp.ones((2, 6, 6, 1))
    v = TrainScaled().init(KEY, x)
    assert single_mode_logits_fn(TrainScaled(), v["params"], {}, x) is None
    mlp = rj_nn.create("mlp", 3)
    vm = mlp.init(KEY, x)
    f = single_mode_logits_fn(mlp, vm["params"], {}, x)
    np.testing.assert_allclose(f(x), mlp.apply(vm, x, train=True), rtol=1e-6)
    assert single_mode_logits_fn(mlp, vm["params"], {"batch_stats": {}}, x) is None


def test_gn_and_sgr_general_path_with_train_dependent_model():
    """A model whose train flag matters keeps the train-mode CE + inference-mode penalty."""
    import flax.linen as nn

    class TrainScaled(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            z = nn.Dense(3)(jnp.tanh(nn.Dense(5)(x.reshape(x.shape[0], -1))))
            return 2.0 * z if train else z

    model = TrainScaled()
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, 6, 6, 1))
    y = jnp.arange(5) % 3
    state, _ = _state(model, x, "gn")
    loss, _ = make_objective("gn", model, lam=1.0)(state.params, state, (x, y), KEY)
    ce = optax.softmax_cross_entropy_with_integer_labels(2.0 * model.apply(state.variables(), x), y).mean()
    pen = regularizers.gradient_norm_penalty(lambda z: model.apply(state.variables(), z), x, y)
    np.testing.assert_allclose(loss, ce + pen, rtol=1e-5)


# --- issue 18: SOAR's cross-entropy and penalty share the forward pass at x' ---------------


def test_soar_shared_pass_matches_the_separate_passes_in_float64(monkeypatch):
    # The shared path (stateless model: CE and the penalty's ∇ₓℓ from one backward pass) against
    # the general path (train-mode CE, penalty on its own passes), forced by declaring the model
    # stateful; the App. C clip active, two microbatches (the whole batch is checked against a
    # plain jax.grad reference above). A small CNN of the zoo's convolution and max-pool, so the
    # double backprop runs through their custom derivatives. Float64: only summation order differs.
    import sys

    import flax.linen as nn

    class SmallCNN(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.relu(rj_nn.Conv(4, (3, 3), padding="VALID")(x))
            x = rj_nn.max_pool(x, (2, 2), (2, 2))
            return nn.Dense(3)(nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1))))

    soar_module = sys.modules["robustjax.training.objectives.soar"]
    with jax.enable_x64(True):
        model = SmallCNN()
        x = jax.random.uniform(jax.random.PRNGKey(1), (8, 8, 8, 1), jnp.float64)
        y = jnp.arange(8) % 3
        state, _ = _state(model, x, "soar")
        state = state.replace(params=jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), state.params))
        assert single_mode_logits_fn(model, state.params, state.model_state, x) is not None
        kw = dict(lam=0.5, eps=0.1, alpha=0.15, microbatches=2, reg_grad_clip=0.05)

        def run():
            objective = make_objective("soar", model, **kw)
            fn = jax.jit(jax.value_and_grad(objective, has_aux=True))
            return fn(state.params, state, (x, y), KEY)

        (loss, aux), grads = run()
        monkeypatch.setattr(soar_module, "single_mode_logits_fn", lambda *a: None)
        (ref_loss, ref_aux), ref_grads = run()
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
    for k in ("ce_loss", "penalty", "accuracy", "loss"):
        np.testing.assert_allclose(aux["metrics"][k], ref_aux["metrics"][k], rtol=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert float(aux["metrics"]["penalty"]) > 0
