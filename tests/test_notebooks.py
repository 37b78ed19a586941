"""Every notebook in ``notebooks/`` runs top to bottom in a fresh Jupyter kernel.

The notebooks are jupytext percent-format ``.py`` files; each is converted with ``jupytext`` and
executed with ``nbclient`` in a fresh ``ipykernel`` started with *this* interpreter
(``sys.executable``, through a kernel spec written to a temporary ``JUPYTER_PATH``), with the
notebook's folder as working directory. Any cell error fails the test.

Default suite: ``01_quickstart`` in its smoke size (``ROBUSTJAX_NOTEBOOK_SMOKE=1``: a few training
steps, a few digits, short attacks). Even at that size a notebook costs 20–55 s of CPU (kernel
start, imports and a dozen XLA compilations; measured: 01 20 s, 02 23 s, 03 22 s, 04 30 s,
05 54 s), so the others run in the slow suite only. Slow suite (``python -m pytest -m slow
tests/test_notebooks.py``): every notebook at full size, as a user runs it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "robustjax-tests"
ALL = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))
# Notebooks smoke-run in the default suite (the others cost more than its budget allows).
DEFAULT_SMOKE = ("01_quickstart",)


def execute(name: str, *, smoke: bool, kernel_dir: Path, timeout: int = 900):
    """Run ``notebooks/<name>.py`` in a fresh kernel; return the executed notebook."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    spec = kernel_dir / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "robustjax tests", "language": "python"}))
    # the kernel draws with the inline backend (Agg rendering, PNG outputs in the notebook)
    env = {"JUPYTER_PATH": str(kernel_dir), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "ROBUSTJAX_NOTEBOOK_SMOKE": "1" if smoke else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nb = jupytext.read(NOTEBOOKS / f"{name}.py")
        client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for out in cell.get("outputs", []))


def test_every_notebook_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert len(ALL) == 5
    for name in ALL:
        assert f"notebooks/{name}.py" in readme, name


@pytest.mark.parametrize("name", DEFAULT_SMOKE)
def test_notebook_runs_smoke(name, tmp_path):
    start = time.perf_counter()
    nb = execute(name, smoke=True, kernel_dir=tmp_path)
    assert _images(nb) >= 1, f"{name} drew no figure"
    print(f"{name}: {time.perf_counter() - start:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_full(name, tmp_path):
    nb = execute(name, smoke=False, kernel_dir=tmp_path)
    assert _images(nb) >= 1, f"{name} drew no figure"
