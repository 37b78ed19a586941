"""Every attack on a batch sharded over 4 forced host devices (subprocess) equals one device."""

import json
import subprocess
import sys
import textwrap

from support import subprocess_env

SHARDED_SCRIPT = textwrap.dedent(
    """
    import os, json
    from functools import partial
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as PS
    from robustjax import attacks as A
    assert jax.device_count() == 4, jax.devices()

    def cnn(p, x):
        h = jax.lax.conv_general_dilated(x, p[0], (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.tanh(h).reshape(x.shape[0], -1) @ p[1]

    p = (jax.random.normal(jax.random.PRNGKey(0), (3, 3, 2, 4)) / 4,
         jax.random.normal(jax.random.PRNGKey(1), (4 * 4 * 4, 5)) / 8)
    f = partial(cnn, p)
    x = jax.random.uniform(jax.random.PRNGKey(2), (8, 6, 6, 2))
    y = jax.random.randint(jax.random.PRNGKey(3), (8,), 0, 5)
    key = jax.random.PRNGKey(4)
    attacks = {
        "fgm": lambda x, y: A.fgm(f, x, y, eps=0.3),
        "fgsm": lambda x, y: A.fgsm(f, x, y, eps=0.03, clip=(0.0, 1.0)),
        "pgd_l2": lambda x, y: A.pgd(f, x, y, eps=0.5, norm=2, step_size=0.2, steps=4, key=key),
        "pgd_linf": lambda x, y: A.pgd(f, x, None, eps=0.05, norm=jnp.inf, step_size=0.02,
                                       steps=4, key=key),
        "wrm": lambda x, y: A.wrm(f, x, y, gamma=1.0, steps=4),
        "deepfool": lambda x, y: A.deepfool(f, x, max_iter=20)[1],
        "rand": lambda x, y: A.worst_of_n(f, x, y, sampler=partial(A.uniform_noise, eps=0.1),
                                          n=3, key=key),
        "lrc": lambda x, y: A.worst_of_n(
            f, x, y, sampler=partial(A.lrc_noise, eps=0.2, decay_length=3.0), n=3, key=key),
        "spatial": lambda x, y: A.spatial(f, x, y, max_angle=20.0, max_shift=0.1, mode="random",
                                          n=3, key=key),
    }
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    xs = jax.device_put(x, NamedSharding(mesh, PS("batch")))
    ys = jax.device_put(y, NamedSharding(mesh, PS("batch")))
    dev0 = jax.devices()[0]
    x1, y1 = jax.device_put(x, dev0), jax.device_put(y, dev0)
    out = {}
    for name, attack in attacks.items():
        fn = jax.jit(attack)
        a = np.asarray(fn(x1, y1))
        res = fn(xs, ys)
        b = np.asarray(res)
        out[name] = [float(np.max(np.abs(a - b))), len(res.sharding.device_set)]
    print(json.dumps(out))
    """
)


def test_sharded_batch_gives_same_result_as_one_device():
    env = subprocess_env(devices=4)
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"fgm", "fgsm", "pgd_l2", "pgd_linf", "wrm", "deepfool", "rand", "lrc",
                           "spatial"}
    for name, (max_diff, n_devices) in result.items():
        assert max_diff <= 1e-5, (name, max_diff)
        assert n_devices == 4, (name, n_devices)
