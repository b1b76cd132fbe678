#!/usr/bin/env bash
# The GPU benchmarks of issue #5 in one call, for a session with a CUDA GPU
# (see bench/gpu/README.md). Run from the repository root:
#
#     bash bench/gpu/run_gpu_bench.sh            # results under $OUT (or bench/results/gpu)
#     bash bench/gpu/run_gpu_bench.sh --dry-run  # CPU, toy sizes: checks the plumbing only
#
# Installs missing Python dependencies from bench/gpu/wheels/ (carried there by the
# caller; see prepare_wheels.sh) without touching the network, then runs gpu_bench.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
export OUT
export RTSOURCE_CACHE="${RTSOURCE_CACHE:-/tmp/rtsource-gpu-cache}"  # not under $OUT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
export OMP_WAIT_POLICY=PASSIVE
export MPLBACKEND=Agg
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

{
  echo "date: $(date -u +%FT%TZ)"; echo "python: $($PY --version 2>&1)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1
} | tee "$OUT/env.txt"

# Missing dependencies: import name -> distribution (installed from bench/gpu/wheels only).
missing=()
for pair in numpy:numpy scipy:scipy mne:mne nibabel:nibabel pylsl:pylsl safetensors:safetensors \
            tqdm:tqdm platformdirs:platformdirs pooch:pooch lazy_loader:lazy_loader \
            decorator:decorator jinja2:jinja2 packaging:packaging onnx:onnx \
            onnxruntime:onnxruntime numba:numba matplotlib:matplotlib; do
  mod="${pair%%:*}"; dist="${pair##*:}"
  $PY -c "import $mod" >/dev/null 2>&1 || missing+=("$dist")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" | tee -a "$OUT/env.txt"
  if [ -d bench/gpu/wheels ]; then
    $PY -m pip install --no-index --no-deps --find-links bench/gpu/wheels "${missing[@]}" \
      2>&1 | tail -n 5 | tee -a "$OUT/env.txt"
  else
    echo "bench/gpu/wheels/ is absent: carry it (bench/gpu/prepare_wheels.sh) to install them" \
      | tee -a "$OUT/env.txt"
  fi
fi

$PY bench/gpu/gpu_bench.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_bench.log"
exit "${PIPESTATUS[0]}"
