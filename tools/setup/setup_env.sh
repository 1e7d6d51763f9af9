#!/usr/bin/env bash
# Idempotent set-up of .venv: torch, the OpenMMLab stack (mmcv built from
# source with compiled ops) and this package in editable mode.
#
# A second run on a set-up machine installs nothing.  The mmcv wheel we build
# is cached per torch version and build (CPU, or CUDA version and GPU
# architectures), so a fresh clone on the same machine (CI) reinstalls it in
# seconds instead of rebuilding it.
#
# VENV= (empty) uses $PYTHON as it is: no venv is created and torch is not
# installed, for a machine whose Python already has torch with CUDA
# (`make gpu-check PY=python3`).  FASTERNET_MM_WHEELHOUSE=DIR installs offline
# from DIR (tools/setup/device_wheels.sh fills it), mmcv's sdist included.
set -euo pipefail

VENV=${VENV-.venv}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-"torch==2.14.1 torchvision==0.29.1"}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
WHEEL_CACHE=${FASTERNET_MM_WHEEL_CACHE:-$HOME/.cache/fasternet_mm/wheels}
WHEELHOUSE=${FASTERNET_MM_WHEELHOUSE:-}
STACK=(
    "setuptools<81" wheel ninja
    "mmengine==0.10.7" "mmdet==3.3.0" "mmsegmentation==1.2.2"
    ftfy regex pycocotools timm onnx onnxruntime pytest flake8 isort opencv-python addict yapf
    zlib-ng
)
# With VENV= : what the stack needs besides torch.  NO_DEPS go in without
# their dependencies, which BARE_STACK lists instead: mmengine's name
# opencv-python (images with torch usually carry opencv-python-headless, and
# a second cv2 would overwrite it), and timm's name torch, whose pinned CUDA
# libraries an offline resolver may not match.  The GPU benchmark compares
# against timm's FasterNet at the version CI runs.
NO_DEPS=("mmengine==0.10.7" "timm>=1.0.31")
BARE_STACK=(
    "setuptools<81" wheel ninja
    "mmdet==3.3.0" "mmsegmentation==1.2.2"
    addict matplotlib numpy pyyaml rich termcolor yapf
    huggingface_hub safetensors
    ftfy regex pycocotools pytest zlib-ng
)

here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
# log, die, build_wheel, download_sdist, strip_wheel
source tools/setup/mmcv_wheel.sh

if [[ -n $WHEELHOUSE ]]; then
    [[ -d $WHEELHOUSE ]] || die "FASTERNET_MM_WHEELHOUSE=$WHEELHOUSE is not a directory"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
    index=(--no-index --find-links "$WHEELHOUSE")
    log "installing offline from $WHEELHOUSE"
else
    index=()
fi

if [[ -n $VENV ]]; then
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    py="$VENV/bin/python"
    stamp="$VENV/.fasternet_mm-setup"
    want="$(printf '%s\n' "$TORCH" "$MMCV_VERSION" "${STACK[*]}"; cat setup.cfg)"
else
    py=$(command -v "$PYTHON") || die "VENV is empty, so PYTHON=$PYTHON is used as it is, but there is no such command"
    torch_version=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null) ||
        die "VENV is empty, so $py is used as it is, but it cannot import torch: install torch there first, or set VENV=.venv"
    log "using $py as it is (VENV is empty): no venv, torch $torch_version left alone"
    want="$(printf '%s\n' "$py" "$here" "$MMCV_VERSION" "${NO_DEPS[*]}" "${BARE_STACK[*]}"; cat setup.cfg)"
    stamp="${XDG_CACHE_HOME:-$HOME/.cache}/fasternet_mm/setup-stamps/$(printf '%s' "$py $here" | cksum | cut -d ' ' -f 1)"
    mkdir -p "$(dirname "$stamp")"
fi
pip=("$py" -m pip --disable-pip-version-check -q)

# This machine's pip config names local indexes that may be absent; their
# warnings are noise.
pip_install() {
    "${pip[@]}" install ${index[@]+"${index[@]}"} "$@" 2>&1 |
        { grep -v 'is ignored: it is neither' || true; }
    return "${PIPESTATUS[0]}"
}

mmcv_ops_work() {
    # A wheel built against another torch imports but fails to load _ext, and
    # a CPU-only build imports on a GPU machine but has no CUDA kernels;
    # running real ops, on CUDA tensors too where CUDA is available, is the
    # only reliable check.  Its errors are shown only when $1 is "verbose".
    local err=/dev/null
    [[ ${1:-} == verbose ]] && err=/dev/stderr
    "$py" - <<'PY' 2>"$err"
import torch
from mmcv.ops import nms, roi_align
devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
for device in devices:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    keep = nms(boxes, scores, 0.5)[1]
    assert keep.tolist() == [0], (device, keep)
    rois = torch.tensor([[0., 0., 0., 4., 4.]], device=device)
    out = roi_align(torch.ones(1, 1, 8, 8, device=device), rois, (2, 2))
    assert out.shape == (1, 1, 2, 2), (device, out.shape)
    assert torch.allclose(out, torch.ones_like(out)), (device, out)
PY
}

if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && mmcv_ops_work; then
    log "up to date (${VENV:-$py})"
    exit 0
fi

if [[ -n $VENV ]]; then
    log "installing $TORCH and the OpenMMLab stack"
    # shellcheck disable=SC2086  # $TORCH is a list of requirements
    pip_install $TORCH "${STACK[@]}"
else
    log "installing the OpenMMLab stack into $py"
    extra=()
    "$py" -c 'import cv2' 2>/dev/null || extra=(opencv-python-headless)
    pip_install --no-deps "${NO_DEPS[@]}"
    pip_install "${BARE_STACK[@]}" ${extra[@]+"${extra[@]}"}
fi

# Prints "cpu", or "cuda TORCH_CUDA ARCHES CUDA_HOME GPU NAME" for the GPUs
# torch sees (ARCHES as TORCH_CUDA_ARCH_LIST wants them, e.g. 9.0).
build_target() {
    "$py" - <<'PY'
import torch
if not torch.cuda.is_available():
    print('cpu')
    raise SystemExit
from torch.utils.cpp_extension import CUDA_HOME
arches = sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                 for i in range(torch.cuda.device_count())})
print('cuda', torch.version.cuda, ';'.join(arches), CUDA_HOME or '-',
      torch.cuda.get_device_name(0))
PY
}

# Stops on a major-version difference between nvcc and torch's CUDA, warns
# on a minor one.  Sets nvcc_cuda.
check_nvcc() {
    local torch_cuda=$1 cuda_home=$2 gpu=$3 nvcc
    nvcc="$cuda_home/bin/nvcc"
    if [[ $cuda_home == - || ! -x $nvcc ]]; then
        die "$gpu is visible but torch finds no nvcc (CUDA_HOME=${CUDA_HOME:-unset}): mmcv's CUDA ops cannot be built. Install the CUDA $torch_cuda toolkit, or point CUDA_HOME at it, and rerun"
    fi
    nvcc_cuda=$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
    [[ -n $nvcc_cuda ]] || die "cannot read the CUDA version from '$nvcc --version'"
    if [[ ${nvcc_cuda%%.*} != "${torch_cuda%%.*}" ]]; then
        die "nvcc ($nvcc) is CUDA $nvcc_cuda but torch was built with CUDA $torch_cuda: mmcv's CUDA ops must be built with the same major version. Put a CUDA ${torch_cuda%%.*}.x toolkit first (CUDA_HOME, PATH), or use a torch built for CUDA ${nvcc_cuda%%.*} (TORCH=...), and rerun"
    elif [[ $nvcc_cuda != "$torch_cuda" ]]; then
        log "warning: nvcc ($nvcc) is CUDA $nvcc_cuda but torch was built with CUDA $torch_cuda; minor versions differ, which usually builds and runs"
    else
        log "nvcc and torch: both CUDA $nvcc_cuda"
    fi
}

# The first mmcv wheel for this Python in directory $1, or nothing.
cached_wheel() {
    local wheel
    for wheel in "$1/mmcv-$MMCV_VERSION-$py_tag-"*.whl; do
        [[ -f $wheel ]] && { printf '%s' "$wheel"; return; }
    done
    return 0
}

if mmcv_ops_work; then
    log "mmcv with working ops already present"
else
    torch_tag=$("$py" -c 'import torch; print(torch.__version__.replace("+", "_"))')
    py_tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    read -r target torch_cuda gpu_arches cuda_home gpu < <(build_target) ||
        die "$py cannot tell whether CUDA is available"
    if [[ $target == cuda ]]; then
        check_nvcc "$torch_cuda" "$cuda_home" "$gpu"
        if [[ -n ${TORCH_CUDA_ARCH_LIST:-} ]]; then
            log "building for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST (from the environment; $gpu is $gpu_arches)"
        else
            export TORCH_CUDA_ARCH_LIST=$gpu_arches
            log "building for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST (the visible $gpu; set TORCH_CUDA_ARCH_LIST to choose)"
        fi
        force_cuda=1
        build="cuda$nvcc_cuda-sm$(printf '%s' "$TORCH_CUDA_ARCH_LIST" | tr -s ' ;,' '---' | tr -d .)"
    else
        force_cuda=0
        build=cpu
    fi
    cache="$WHEEL_CACHE/torch-$torch_tag-$build"
    wheel=$(cached_wheel "$cache")
    legacy=$(cached_wheel "$WHEEL_CACHE/torch-$torch_tag")
    if [[ -z $wheel && $build == cpu && -n $legacy ]]; then
        # Cached before the key named the build; the op check below still
        # refuses it if it does not run here.  Linked, not moved: checkouts
        # with the older script still look for it there.
        mkdir -p "$cache"
        ln -f "$legacy" "$cache/" 2>/dev/null || cp "$legacy" "$cache/"
        wheel="$cache/$(basename "$legacy")"
    fi
    if [[ -z $wheel ]]; then
        if ((force_cuda)); then
            log "building mmcv $MMCV_VERSION from source (FORCE_CUDA=1, MAX_JOBS=${MAX_JOBS:-$(nproc)}; about 6 minutes on 16 cores for one architecture)"
        else
            log "building mmcv $MMCV_VERSION from source (FORCE_CUDA=0, about 10 minutes on 2 cores)"
        fi
        started=$SECONDS
        mkdir -p "$cache"
        src=$(mktemp -d)
        if [[ -n $WHEELHOUSE ]]; then
            sdist="$WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz"
            [[ -f $sdist ]] || die "no mmcv-$MMCV_VERSION.tar.gz in $WHEELHOUSE (tools/setup/device_wheels.sh puts it there)"
            cp "$sdist" "$src/"
        else
            download_sdist "$py" "$src" "$MMCV_VERSION" ||
                die "could not download mmcv $MMCV_VERSION's source"
        fi
        tar -xzf "$src"/mmcv-"$MMCV_VERSION".tar.gz -C "$src"
        # torch >= 2.10 headers need C++20; mmcv pins -std=c++17.
        if "$py" -c 'import torch, sys; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 10))'; then
            sed -i 's/-std=c++17/-std=c++20/' "$src/mmcv-$MMCV_VERSION/setup.py"
        fi
        # --no-cache-dir (build_wheel): pip's own wheel cache is not keyed by
        # torch version.
        build_log="$cache/build.log"
        if ! MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            build_wheel "$py" "$src/mmcv-$MMCV_VERSION" "$cache" "$build_log" \
            "$started" ${index[@]+"${index[@]}"}; then
            tail -n 30 "$build_log"
            die "building mmcv failed after $(minutes_since "$started") min; the whole log is $build_log"
        fi
        rm -rf "$src"
        wheel=$(cached_wheel "$cache")
        [[ -n $wheel ]] || die "pip wheel left no mmcv wheel for $py_tag in $cache"
        log "built mmcv $MMCV_VERSION ($build) in $(minutes_since "$started") min"
        strip_wheel "$wheel" "$py"
    fi
    log "installing $wheel"
    "${pip[@]}" install --force-reinstall --no-deps "$wheel"
    mmcv_ops_work verbose || die "mmcv.ops does not run against this torch$( ((force_cuda)) && printf ' on CUDA'); remove $cache and retry"
fi

log "installing fasternet_mm (editable)"
pip_install --no-build-isolation --no-deps -e .
printf '%s' "$want" > "$stamp"
log "done"
