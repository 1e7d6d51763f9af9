#!/usr/bin/env bash
# Usage: tools/dist_run.sh NPROC SCRIPT [args]: run tools/SCRIPT with
# --launcher pytorch in NPROC processes through torchrun (one per GPU, or
# CPU workers with the gloo backend). For several nodes set NNODES,
# NODE_RANK, MASTER_ADDR and PORT on each.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
TOOLS=$(cd "$(dirname "$0")" && pwd)
# The repository's .venv (made by make setup) when present, else `python`.
if [[ -z ${PYTHON_BIN:-} ]]; then
    PYTHON_BIN=python
    [[ -x $TOOLS/../.venv/bin/python ]] && PYTHON_BIN=$TOOLS/../.venv/bin/python
fi
exec "$PYTHON_BIN" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/$SCRIPT" "$@" --launcher pytorch
