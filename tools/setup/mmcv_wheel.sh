# Functions for building the mmcv wheel, sourced by tools/setup/setup_env.sh.
# Each can be called on its own, e.g.
#   bash -c 'source tools/setup/mmcv_wheel.sh; build_progress 10 0' < build.log

log() { printf '[setup] %s\n' "$*"; }
die() { log "$*"; exit 1; }

# Minutes since $SECONDS was $1, to one decimal.
minutes_since() {
    awk -v s=$((SECONDS - $1)) 'BEGIN { printf "%.1f", s / 60 }'
}

# Reads a verbose pip build log on stdin and prints a line at every $1-th
# compiled file and at the last one, with the minutes since $SECONDS was $2.
# ninja, which torch's extension builder runs, writes "[k/N] command" when
# its k-th of N files is compiled; pip indents its subprocesses' lines.
build_progress() {
    local every=${1:?every how many files} started=${2:-$SECONDS}
    local line done total
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*\[([0-9]+)/([0-9]+)\][[:space:]] ]] || continue
        done=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
        if ((done % every == 0 || done == total)); then
            log "compiled $done of $total files, $(minutes_since "$started") min"
        fi
    done
}

# Builds a wheel of the source tree $2 into directory $3 with Python $1
# (pip and setuptools there, no build isolation), all its output into the
# file $4, and shows the progress of its compiling (build_progress, with
# minutes since $SECONDS was $5).  More pip arguments may follow.  Returns
# pip's status.
build_wheel() {
    local py=$1 src=$2 dest=$3 build_log=$4 started=$5 cflags scripts
    shift 5
    # -g0 after Python's own -g: debug info would only be stripped.
    # setuptools may take CFLAGS in place of Python's (-O3 -DNDEBUG), so
    # those come first.
    cflags="${CFLAGS-$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("CFLAGS") or "")')} -g0"
    # torch looks for ninja on PATH: the one the stack put beside $py first.
    scripts=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    log "compiling; the whole log goes to $build_log"
    PATH="$scripts:$PATH" CFLAGS=$cflags "$py" -m pip --disable-pip-version-check wheel -v \
        --no-build-isolation --no-deps --no-cache-dir "$@" -w "$dest" "$src" \
        2>&1 | tee "$build_log" | build_progress 10 "$started"
    return "${PIPESTATUS[0]}"
}

# Downloads mmcv's sdist (version $3) into directory $2 with Python $1's pip;
# more pip arguments may follow.  pip prepares an sdist's metadata even to
# download it, in an isolated build environment with the newest setuptools,
# and mmcv's setup.py imports pkg_resources, which setuptools 81 removed: a
# constraint file holds that environment's setuptools below 81.
download_sdist() {
    local py=$1 dest=$2 version=$3 constraint status
    shift 3
    constraint=$(mktemp)
    printf 'setuptools<81\n' > "$constraint"
    PIP_CONSTRAINT=$constraint "$py" -m pip --disable-pip-version-check -q \
        download --no-deps --no-binary :all: --no-cache-dir "$@" \
        -d "$dest" "mmcv==$version" 2>&1 |
        { grep -v 'is ignored: it is neither' || true; }
    status=${PIPESTATUS[0]}
    rm -f "$constraint"
    return "$status"
}

# Size of file $1 in MiB, to one decimal.
mib() {
    awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'
}

# Strips the debug info from the shared libraries in wheel $1 and repacks it
# in its place with Python $2 (which needs the wheel package): mmcv's _ext
# as built carries about 80 MB of it, which nothing at run time reads.  On
# any failure the wheel stays as it was, with a warning.
strip_wheel() {
    local wheel=$1 py=$2 work packed before
    if ! command -v strip >/dev/null; then
        log "warning: no strip command; $(basename "$wheel") keeps its debug info"
        return 0
    fi
    before=$(mib "$wheel")
    # Beside the wheel, so that the final move is a rename on one file system.
    work=$(mktemp -d "$(dirname "$wheel")/.strip.XXXXXX")
    packed="$work/packed/$(basename "$wheel")"
    if "$py" -m wheel unpack -d "$work/unpacked" "$wheel" >/dev/null &&
        find "$work/unpacked" -type f \( -name '*.so' -o -name '*.so.*' \) \
            -exec strip --strip-debug {} + &&
        mkdir "$work/packed" &&
        "$py" -m wheel pack -d "$work/packed" "$work/unpacked"/* >/dev/null &&
        [[ -f $packed ]]; then
        mv -f "$packed" "$wheel"
        log "stripped the debug info of $(basename "$wheel"): $before MiB -> $(mib "$wheel") MiB"
    else
        log "warning: could not strip $(basename "$wheel"); it keeps its debug info"
    fi
    rm -rf "$work"
}
