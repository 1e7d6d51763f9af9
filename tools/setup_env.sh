#!/usr/bin/env bash
# Idempotent set-up of .venv: torch, the OpenMMLab stack (mmcv built from
# source with compiled ops) and this package in editable mode.
#
# A second run on a set-up machine installs nothing.  The mmcv wheel we build
# is cached per torch version, so a fresh clone on the same machine (CI)
# reinstalls it in seconds instead of rebuilding it.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-"torch==2.14.1 torchvision==0.29.1"}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
WHEEL_CACHE=${FASTERNET_MM_WHEEL_CACHE:-$HOME/.cache/fasternet_mm/wheels}
STACK=(
    "setuptools<81" wheel ninja
    "mmengine==0.10.7" "mmdet==3.3.0" "mmsegmentation==1.2.2"
    ftfy regex pycocotools timm onnx onnxruntime pytest flake8 isort opencv-python addict yapf
    zlib-ng
)

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
stamp="$VENV/.fasternet_mm-setup"
want="$(printf '%s\n' "$TORCH" "$MMCV_VERSION" "${STACK[*]}"; cat setup.cfg)"

log() { printf '[setup] %s\n' "$*"; }

if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip --disable-pip-version-check -q)

mmcv_ops_work() {
    # A wheel built against another torch imports but fails to load _ext;
    # running a real op is the only reliable check.
    "$py" - <<'PY' 2>/dev/null
import torch
from mmcv.ops import nms, roi_align
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
assert keep.tolist() == [0], keep
out = roi_align(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2))
assert out.shape == (1, 1, 2, 2)
PY
}

if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && mmcv_ops_work; then
    log "up to date ($VENV)"
    exit 0
fi

log "installing $TORCH and the OpenMMLab stack"
# This machine's pip config names local indexes that may be absent; their
# warnings are noise.
"${pip[@]}" install $TORCH "${STACK[@]}" 2>&1 | { grep -v 'is ignored: it is neither' || true; }

if mmcv_ops_work; then
    log "mmcv with working ops already present"
else
    torch_tag=$("$py" -c 'import torch; print(torch.__version__.replace("+", "_"))')
    cache="$WHEEL_CACHE/torch-$torch_tag"
    wheel=$(ls "$cache"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
    if [[ -z $wheel ]]; then
        force_cuda=0
        if command -v nvcc >/dev/null && "$py" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
            force_cuda=1
        fi
        log "building mmcv $MMCV_VERSION from source (FORCE_CUDA=$force_cuda, about 10 minutes on 2 cores)"
        mkdir -p "$cache"
        src=$(mktemp -d)
        "${pip[@]}" download --no-deps --no-binary :all: --no-cache-dir \
            -d "$src" "mmcv==$MMCV_VERSION"
        tar -xzf "$src"/mmcv-"$MMCV_VERSION".tar.gz -C "$src"
        # torch >= 2.10 headers need C++20; mmcv pins -std=c++17.
        if "$py" -c 'import torch, sys; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 10))'; then
            sed -i 's/-std=c++17/-std=c++20/' "$src/mmcv-$MMCV_VERSION/setup.py"
        fi
        # --no-cache-dir: pip's own wheel cache is not keyed by torch version.
        MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            "${pip[@]}" wheel --no-build-isolation --no-deps --no-cache-dir \
            -w "$cache" "$src/mmcv-$MMCV_VERSION"
        rm -rf "$src"
        wheel=$(ls "$cache"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
    fi
    log "installing $wheel"
    "${pip[@]}" install --force-reinstall --no-deps "$wheel"
    mmcv_ops_work || { log "mmcv.ops does not run against this torch; remove $cache and retry"; exit 1; }
fi

log "installing fasternet_mm (editable)"
"${pip[@]}" install --no-build-isolation --no-deps -e .
printf '%s' "$want" > "$stamp"
log "done"
