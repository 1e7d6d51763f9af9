#!/usr/bin/env bash
# Usage: tools/setup/device_wheels.sh DIR
#
# Run where pip reaches PyPI.  Fills DIR with what an offline GPU machine
# whose Python already has torch with CUDA still needs to run `make gpu-check`:
# the wheels below (Linux x86_64, CPython $DEVICE_PYTHON) and mmcv's sdist,
# which setup_env.sh builds there for the local GPU.  Then, on that machine:
#
#     FASTERNET_MM_WHEELHOUSE=DIR make gpu-check PY=python3
#
# The list is what a GPU image with torch 2.11 + CUDA 13.0 on Python 3.12
# lacks, at the versions CI's .venv runs.  The wheelhouse must stay small to
# copy to an offline machine: past MAX_MIB (32) it warns.
set -euo pipefail

dir=${1:?usage: tools/setup/device_wheels.sh DIR}
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}
PYTHON=${PYTHON:-python3}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
MAX_MIB=${MAX_MIB:-32}

# Pure Python (py3-none-any); such an image has their other needs.
PURE=(
    mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2
    addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
    terminaltables==3.1.10 prettytable==3.18.0 ftfy==6.3.1
    setuptools==80.10.2 timm==1.0.31
)
# With compiled parts: wheels for the device's Python and platform.
COMPILED=(pycocotools==2.0.11 shapely==2.2.0 zlib-ng==1.1.0 wcwidth==0.9.4)

# download_sdist (its log is replaced below)
source "$(dirname "$0")/mmcv_wheel.sh"
log() { printf '[device_wheels] %s\n' "$*"; }
# This machine's pip config names local indexes that may be absent; their
# warnings are noise.
pip_quiet() {
    "$PYTHON" -m pip --disable-pip-version-check -q "$@" 2>&1 |
        { grep -v 'is ignored: it is neither' || true; }
    return "${PIPESTATUS[0]}"
}

mkdir -p "$dir"
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
log "downloading ${#PURE[@]} pure-Python and ${#COMPILED[@]} compiled wheels for CPython $DEVICE_PYTHON into $dir"
pip_quiet download --no-deps --only-binary=:all: --implementation cp \
    --python-version "$DEVICE_PYTHON" "${platforms[@]}" \
    -d "$dir" "${PURE[@]}" "${COMPILED[@]}"
download_sdist "$PYTHON" "$dir" "$MMCV_VERSION"

total=$(du -cb "$dir"/* | tail -n 1 | cut -f 1)
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
log "$(find "$dir" -maxdepth 1 -type f | wc -l) files, $mib MiB in $dir"
if ((total > MAX_MIB * 1048576)); then
    log "WARNING: that is over $MAX_MIB MiB; the wheelhouse should stay small to copy"
fi
