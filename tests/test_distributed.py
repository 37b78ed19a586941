"""Multi-process training on this machine: ``robustjax train --processes 2 --cpu-devices 2`` (two
JAX processes joined by ``jax.distributed``, gloo collectives over 127.0.0.1) ends with the
parameters of the same run as 1 process × 4 devices and as 1 process × 1 device, to float32
noise; a 2-process run killed after a checkpoint and resumed as 2 processes ends exactly where
the uninterrupted 2-process run ends, and its robustness evaluation by 2 processes
(``robustjax evaluate --processes 2``) writes the report of a 1-process evaluation; the local
launcher tears the job down when one process fails.

The noise floor is measured as in ``test_training_sharding.py``: two correct 1-device runs that
differ only in XLA:CPU's summation order (YNNPACK fusions on and off).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from robustjax import data as rj_data
from robustjax import distributed, evaluation
from robustjax.training.loop import load_run
from robustjax.training.objectives import inference_logits_fn
from support import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "mnist5k" / "erm.py"
# A 2-layer MLP on the 16-dim Gaussian mixture (1024 training examples): 64 SGD steps per epoch
# at batch 16 (4 examples per device). SGD: Adam's 1/sqrt(v) would magnify last-bit differences.
OVERRIDES = ["dataset='gaussian-mixture'", "model='mlp'", "model_kwargs={}", "epochs=3",
             "batch_size=16", "eval_batch_size=64", "optimizer.name='sgd'",
             "optimizer.learning_rate=0.05"]
TIMEOUT = 300

# One process with 4 forced host devices trains three times: on all 4 devices, on 1 device, and
# on 1 device with YNNPACK's fusions (the noise floor); in-process compilations are shared.
SINGLE_PROCESS = textwrap.dedent(
    """
    import os, sys
    import jax
    from robustjax.configs import apply_override, load_config
    from robustjax.core.sharding import data_mesh
    from robustjax.training.loop import fit

    config_path, root, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert len(jax.devices()) == 4, jax.devices()
    for name, devices, ynnpack in (("d4", 4, "0"), ("d1", 1, "0"), ("d1_ynnpack", 1, "1")):
        os.environ["ROBUSTJAX_CPU_YNNPACK"] = ynnpack
        config = load_config(config_path)
        for o in overrides:
            apply_override(config, o)
        fit(config, os.path.join(root, name), mesh=data_mesh(jax.devices()[:devices]),
            progress=False)
    """
)


def _env(**extra):
    return subprocess_env(PYTHONPATH=str(ROOT), **extra)


def _run_group(cmd, *, env, timeout=TIMEOUT):
    """Run ``cmd`` in its own process group; kill the whole group if it outlives ``timeout``."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def _train_cmd(workdir, *extra):
    cmd = [sys.executable, "-m", "robustjax", "train", "--config", str(CONFIG), "--workdir", str(workdir)]
    for o in OVERRIDES:
        cmd += ["--set", o]
    return cmd + list(extra)


def _two_process_train(workdir, *extra):
    code, out, err = _run_group(_train_cmd(workdir, "--processes", "2", "--cpu-devices", "2", *extra),
                                env=_env(ROBUSTJAX_CPU_YNNPACK="0"))
    assert code == 0, err[-3000:]
    return out


def _leaves(workdir, epoch=None):
    _, state = load_run(workdir, epoch=epoch)
    tree = jax.device_get((state.params, state.opt_state, state.key, state.step))
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _distance(u, v):
    return float(np.sqrt(sum(np.sum((a.astype(np.float64) - b) ** 2) for a, b in zip(u, v))))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    start = time.perf_counter()
    code, _, err = _run_group([sys.executable, "-c", SINGLE_PROCESS, str(CONFIG), str(root), *OVERRIDES],
                              env=_env(JAX_NUM_CPU_DEVICES="4"))
    assert code == 0, err[-3000:]
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    out = _two_process_train(root / "p2")
    two_s = time.perf_counter() - start
    print(f"\n[timing] 1 process x 4 devices (3 fits): {single_s:.1f} s; "
          f"2 processes x 2 devices: {two_s:.1f} s")
    return root, out


def test_two_processes_equal_one_process_four_devices_and_one_device(runs):
    root, out = runs
    # only process 0 prints: one line per epoch
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch")] == ["1", "2", "3"]
    records = [json.loads(line) for line in (root / "p2" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["test_accuracy"] > 0.9

    p2, d4, d1, floor_run = (_leaves(root / n) for n in ("p2", "d4", "d1", "d1_ynnpack"))
    assert len(p2) == len(d4) == len(d1) == len(floor_run)
    assert int(p2[-1]) == 3 * 64  # steps: the 2-process run saw every global batch once
    floor = _distance(d1, floor_run)
    d_p2_d1, d_p2_d4, d_d4_d1 = _distance(p2, d1), _distance(p2, d4), _distance(d4, d1)
    print(f"\n[parameters] |p2-d1| {d_p2_d1:.3g}  |p2-d4| {d_p2_d4:.3g}  |d4-d1| {d_d4_d1:.3g}  "
          f"floor |d1-d1_ynnpack| {floor:.3g}")
    assert 0.0 < floor < 1e-4
    assert d_p2_d1 <= 3.0 * floor and d_p2_d4 <= 3.0 * floor and d_d4_d1 <= 3.0 * floor
    # not vacuous: the last two epochs moved the parameters far beyond the floor
    assert _distance(d1, _leaves(root / "d1", epoch=1)) > 1e3 * floor


@pytest.mark.slow
def test_two_process_run_killed_after_checkpoint_resumes_as_two_processes(runs, tmp_path):
    root, _ = runs
    work = tmp_path / "killed"
    cmd = _train_cmd(work, "--processes", "2", "--cpu-devices", "2")
    launcher = subprocess.Popen(cmd, env=_env(ROBUSTJAX_CPU_YNNPACK="0"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=ROOT)
    try:
        deadline = time.time() + TIMEOUT
        first = work / "checkpoints" / "1"
        while not first.is_dir() and time.time() < deadline and launcher.poll() is None:
            time.sleep(0.005)
        assert launcher.poll() is None, "training ended before it could be killed: " + launcher.stderr.read()[-2000:]
        workers = _children(launcher.pid)
        assert len(workers) == 2, workers
        os.kill(workers[1], signal.SIGKILL)  # one process dies; the launcher must stop the other
        launcher.wait(timeout=60)
        err = launcher.stderr.read()
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert launcher.returncode == 128 + signal.SIGKILL, err[-2000:]
    for pid in workers:
        assert not _alive(pid), f"worker {pid} survived the launcher"
    done = sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    assert done and max(done) < 3, done

    out = _two_process_train(work, "--resume")
    assert "epoch   3" in out
    for a, b in zip(_leaves(root / "p2"), _leaves(work)):
        np.testing.assert_array_equal(a, b)
    lines = (work / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]

    # the resumed run evaluated by 2 processes: the report of 1 process and 1 device
    code, out, err = _run_group([sys.executable, "-m", "robustjax", "evaluate", "--workdir", str(work),
                                 "--limit", "40", "--batch-size", "10", "--processes", "2",
                                 "--cpu-devices", "2"], env=_env())
    assert code == 0, err[-3000:]
    assert out.count("robust accuracy") == 1  # printed by process 0 only
    written = json.loads((work / "robustness.json").read_text())
    run, state = load_run(work)
    report = evaluation.evaluate(
        inference_logits_fn(run.model, state.params, state.model_state),
        rj_data.subset(run.test_data, 40), suite=run.config.evaluation.suite, batch_size=10,
        key=jax.random.PRNGKey(run.config.evaluation.seed), progress=False)
    expected = json.loads(json.dumps(evaluation.report_to_dict(report)))
    assert (written["meta"]["processes"], written["meta"]["devices"]) == (2, 4)
    assert (expected["meta"]["processes"], expected["meta"]["devices"]) == (1, len(jax.devices()))
    written.pop("meta"), expected.pop("meta")
    assert written == expected


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# The launcher itself (no JAX in the children: fast).
# ---------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    pid = int(os.environ["ROBUSTJAX_PROCESS_ID"])
    with open(os.path.join(sys.argv[1], f"{pid}.json"), "w") as f:
        json.dump({k: os.environ.get(k) for k in ("JAX_COORDINATOR_ADDRESS", "ROBUSTJAX_NUM_PROCESSES",
                   "JAX_NUM_CPU_DEVICES", "JAX_PLATFORMS")} | {"pid": os.getpid()}, f)
    mode = sys.argv[2]
    if mode == "fail" and pid == 1:
        time.sleep(0.2)
        sys.exit(3)
    if mode != "ok":
        time.sleep(60)
    """
)


def test_launcher_sets_the_environment_and_stops_the_job_on_failure(tmp_path):
    code = distributed.launch_local([sys.executable, "-c", CHILD, str(tmp_path), "ok"], processes=3,
                                    cpu_devices=2, timeout=60)
    assert code == 0
    seen = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(3)]
    addresses = {s["JAX_COORDINATOR_ADDRESS"] for s in seen}
    assert len(addresses) == 1 and next(iter(addresses)).startswith("127.0.0.1:")
    assert all(s["ROBUSTJAX_NUM_PROCESSES"] == "3" and s["JAX_NUM_CPU_DEVICES"] == "2"
               and s["JAX_PLATFORMS"] == "cpu" for s in seen)

    start = time.perf_counter()
    code = distributed.launch_local([sys.executable, "-c", CHILD, str(tmp_path), "fail"], processes=2,
                                    timeout=60)
    assert code == 3 and time.perf_counter() - start < 20  # process 0 (sleeping 60 s) was stopped
    assert not _alive(json.loads((tmp_path / "0.json").read_text())["pid"])

    start = time.perf_counter()
    code = distributed.launch_local([sys.executable, "-c", CHILD, str(tmp_path), "hang"], processes=2,
                                    timeout=1.0)
    assert code == 124 and time.perf_counter() - start < 20


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="processes"):
        distributed.launch_local(["true"], processes=0)
    with pytest.raises(ValueError, match="cpu_devices"):
        distributed.launch_local(["true"], processes=2, cpu_devices=0)
    with pytest.raises(ValueError, match="timeout"):
        distributed.launch_local(["true"], processes=2, timeout=-1)
    with pytest.raises(ValueError, match="command"):
        distributed.launch_local([], processes=2)
    port = distributed.free_port()
    assert 0 < port < 65536


def test_initialize_rejects_bad_arguments_before_touching_jax(monkeypatch):
    with pytest.raises(ValueError, match="num_processes must be a positive integer"):
        distributed.initialize(num_processes=0, process_id=0)
    with pytest.raises(ValueError, match=r"process_id must be in \[0, 2\)"):
        distributed.initialize(num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="cpu_devices must be a positive integer"):
        distributed.initialize(num_processes=2, process_id=0, cpu_devices=0)
    monkeypatch.setenv("ROBUSTJAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="ROBUSTJAX_NUM_PROCESSES must be an integer; got 'two'"):
        distributed.initialize()
