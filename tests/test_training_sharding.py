"""Data-parallel training over 4 (forced host) devices equals the 1-device run."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from support import subprocess_env

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from robustjax.configs import base_config
    from robustjax import data as rj_data
    from robustjax.training.loop import build_run, initial_state
    from robustjax.training.objectives import make_objective
    from robustjax.training.optimizers import make_optimizer
    from robustjax.training.step import batch_sharding, data_mesh, jit_train_step, replicated

    model_name, out = sys.argv[1], sys.argv[2]
    config = base_config()
    config.model = model_name
    config.model_kwargs = {"depth": 8} if model_name == "resnet" else {}
    config.batch_size = 32
    # SGD: Adam divides by sqrt(v), which turns last-bit differences of near-zero gradient
    # entries (different summation order on 4 devices) into visible parameter differences.
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.05
    mesh = data_mesh()
    run = build_run(config)
    tx = make_optimizer(config.optimizer, steps_per_epoch=run.steps_per_epoch, epochs=1)
    step = jit_train_step(objective=make_objective("erm", run.model), tx=tx, mesh=mesh,
                          augment=rj_data.augment_pad_crop_flip)
    state = jax.device_put(initial_state(run, tx), replicated(mesh))
    losses = []
    batches = rj_data.batches(run.train_data, 32, key=jax.random.PRNGKey(1), drop_remainder=True)
    for _, batch in zip(range(int(sys.argv[3])), batches):
        batch = jax.device_put(batch, batch_sharding(mesh))
        assert len(batch[0].sharding.device_set) == len(jax.devices())
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    leaves = [np.asarray(l) for l in jax.tree_util.tree_leaves((state.params, state.model_state))]
    np.savez(out, *leaves)
    print(json.dumps({"devices": len(jax.devices()), "losses": losses}))
    """
)


def _run(model_name, devices, tmp_path, *, steps=2, ynnpack=False):
    env = subprocess_env(devices=devices, ROBUSTJAX_CPU_YNNPACK="1" if ynnpack else "0")
    out = tmp_path / f"{model_name}_{devices}_{int(ynnpack)}.npz"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, model_name, str(out), str(steps)], env=env, capture_output=True,
        text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == devices
    with np.load(out) as f:
        leaves = [f[k] for k in sorted(f.files, key=lambda s: int(s.split("_")[1]))]
    return result["losses"], leaves


def test_four_devices_equal_one_device_with_batchnorm(tmp_path):
    # The pre-activation ResNet has BatchNorm: its train-mode statistics must be computed over
    # the whole global batch, not per device. (cnn7 is not used here: at initialization on
    # MNIST its first two layers' float32 gradients are ill-conditioned — 1-device float32
    # and float64 differ by ~40% — so no two summation orders agree to 1e-5.)
    # The ResNet is ill-conditioned too, more mildly: after two SGD steps its parameters move
    # by ~6e-5 between any two float32 summation orders. The noise floor is measured here as
    # the distance between two correct 1-device runs, one with XLA's own convolutions
    # (ROBUSTJAX_CPU_YNNPACK=0) and one with YNNPACK's; the 4-device run must be as close to
    # the 1-device run as they are to each other. Per-device BatchNorm statistics (the bug
    # this guards against) move the first loss by ~1e-2 and the parameters by ~1e-3.
    losses1, leaves1 = _run("resnet", 1, tmp_path)
    losses4, leaves4 = _run("resnet", 4, tmp_path)
    _, leaves1y = _run("resnet", 1, tmp_path, ynnpack=True)
    np.testing.assert_allclose(losses4, losses1, rtol=1e-5, atol=1e-5)
    assert len(leaves1) == len(leaves4) == len(leaves1y)

    def distance(u, v):
        return float(np.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2) for a, b in zip(u, v))))

    floor = distance(leaves1, leaves1y)
    assert 0.0 < floor < 1e-2
    assert distance(leaves4, leaves1) <= 3.0 * floor
    for a, b in zip(leaves1, leaves4):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-4)
    assert losses1[-1] != losses1[0]
