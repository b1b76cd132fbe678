# Sourced by scripts/demo and scripts/test: create .venv and install rtsource into it.
# Needs only Python 3.10+. Re-installs when pyproject.toml or constraints.txt change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  echo "Creating virtual environment in .venv ..."
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=".venv/.rtsource-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "Installing rtsource and its dependencies (CPU PyTorch) ..."
  python -m pip install --quiet --disable-pip-version-check --upgrade pip
  # The constraints file pins the CPU build of torch (an unpinned torch pulls CUDA wheels).
  python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,viewer,train,openvino]"
  echo "$want" > "$stamp"
fi
# Two cores: LSL, BLAS and torch threads together must not oversubscribe them.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}" NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-1}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
