"""Kill a real training process after its first checkpoint; the resumed run ends exactly where an
uninterrupted run with the same seed ends."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import jax

from robustjax.training.loop import load_run
from support import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["--set", "model=mlp", "--set", "model_kwargs={}", "--set", "epochs=4", "--set", "batch_size=64"]


def _train(workdir, *extra, wait=True):
    cmd = [sys.executable, "-m", "robustjax", "train", "--config", str(ROOT / "configs/mnist5k/erm.py"),
           "--workdir", str(workdir), *OVERRIDES, *extra]
    env = subprocess_env()
    if wait:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _leaves(workdir):
    _, state = load_run(workdir)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get((state.params, state.opt_state, state.key)))]


def test_kill_after_epoch_one_then_resume_matches_uninterrupted(tmp_path):
    full = tmp_path / "full"
    _train(full)

    killed = tmp_path / "killed"
    proc = _train(killed, wait=False)
    deadline = time.time() + 300
    first = killed / "checkpoints" / "1"
    while not first.is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "training finished before it could be killed: " + (proc.stderr.read() or "")[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert done and max(done) < 4, done

    out = _train(killed, "--resume")
    assert "epoch   4" in out.stdout
    for a, b in zip(_leaves(full), _leaves(killed)):
        np.testing.assert_array_equal(a, b)
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [__import__("json").loads(l)["epoch"] for l in lines] == [1, 2, 3, 4]


def test_existing_checkpoints_without_resume_is_an_error(tmp_path):
    work = tmp_path / "run"
    _train(work, "--set", "epochs=1")
    cmd = [sys.executable, "-m", "robustjax", "train", "--config", str(ROOT / "configs/mnist5k/erm.py"),
           "--workdir", str(work), *OVERRIDES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "--resume" in proc.stderr
