#!/usr/bin/env bash
# Create the separate virtual environment in which the PyTorch peer benchmark runs.
#
# robustjax never depends on torch: the peer (benchmarks/peer/torch_peer.py) runs in its own
# venv so that torch and JAX never share a process or an environment. This script makes that
# venv and installs exactly
#
#     pip install torch==2.13.0 numpy scipy tqdm
#     pip install --no-deps torchattacks
#
# torchattacks is installed without its dependencies on purpose: its metadata requires
# torchvision, and resolving that pulls a CUDA build of torch (several GB of nvidia-* wheels)
# in place of the CPU one. The peer only uses torchattacks.PGD and PGDL2, which need torch alone.
#
# torch is taken from the PyTorch CPU wheel index first (CPU-only build, ~200 MB); if that
# index cannot be used, from the ordinary package index (PyPI, plus any mirror or wheel
# directory configured for pip on the machine). The script reports which build it got and warns
# if it is a CUDA one.
#
# Usage (from anywhere):
#     bash benchmarks/peer/setup_torch_env.sh
# Environment:
#     ROBUSTJAX_TORCH_VENV   where to create the venv (default: <repo>/benchmarks/.torch-venv)
#     ROBUSTJAX_TORCH_PYTHON interpreter used to create it (default: python3)
# Re-running is safe: an existing venv is reused and pip only installs what is missing.
# Then run the peer with
#     benchmarks/.torch-venv/bin/python benchmarks/peer/torch_peer.py --json out.json
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/../.." && pwd)"
venv="${ROBUSTJAX_TORCH_VENV:-${repo_root}/benchmarks/.torch-venv}"
base_python="${ROBUSTJAX_TORCH_PYTHON:-python3}"

torch_version="2.13.0"
cpu_index="https://download.pytorch.org/whl/cpu"

if ! command -v "${base_python}" >/dev/null 2>&1; then
    echo "error: ${base_python} not found (set ROBUSTJAX_TORCH_PYTHON)" >&2
    exit 1
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "creating virtual environment at ${venv}"
    "${base_python}" -m venv "${venv}"
else
    echo "reusing virtual environment at ${venv}"
fi
py="${venv}/bin/python"
pip=("${py}" -m pip --disable-pip-version-check)

# 1. torch, CPU build preferred. A failed attempt at the CPU index (unreachable, no matching
#    wheel) falls back to the default index; short timeouts keep an unreachable host cheap.
echo "installing torch==${torch_version} (trying the CPU wheel index first)"
if "${pip[@]}" install --retries 1 --timeout 30 --index-url "${cpu_index}" \
        "torch==${torch_version}"; then
    echo "torch: the CPU-index attempt succeeded (pip also searches any wheel directory or" \
         "mirror configured on this machine, so the wheel may have come from there)"
else
    echo "the CPU wheel index failed; falling back to the default package index"
    "${pip[@]}" install "torch==${torch_version}"
fi

# 2. The exact set the benchmark needs (torch is already satisfied, so it is not replaced).
"${pip[@]}" install "torch==${torch_version}" numpy scipy tqdm

# 3. torchattacks without its dependencies (see the header: they would pull torchvision + CUDA).
"${pip[@]}" install --no-deps torchattacks

# 4. Report what we got.
"${py}" - <<'EOF'
import torch
import torchattacks

cuda = torch.version.cuda
print(f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'}), "
      f"torchattacks {torchattacks.__version__}")
if cuda:
    print("warning: this torch is a CUDA build (large); the benchmark still runs on the CPU")
EOF
echo "peer environment ready: ${py}"
