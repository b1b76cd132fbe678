#!/usr/bin/env bash
# Download (on a machine with registry access) the wheels the GPU machine may lack, for
# its Python 3.12 on x86-64 Linux, into bench/gpu/wheels/ (ignored by nothing: do not
# commit them; carry the folder with the run: carry=["bench/gpu/wheels"]). About 20 MB;
# scipy (about 35 MB more) only with --scipy.
set -euo pipefail
cd "$(dirname "$0")"
pkgs=(mne pylsl nibabel safetensors tqdm platformdirs pooch lazy_loader
      decorator jinja2 markupsafe packaging)
[ "${1:-}" = "--scipy" ] && pkgs+=(scipy)
python3 -m pip download --dest wheels --no-deps --only-binary=:all: \
  --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any "${pkgs[@]}"
du -sh wheels
