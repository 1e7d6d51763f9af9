#!/usr/bin/env bash
# Usage: tools/dist_run.sh NPROC SCRIPT [args]: run SCRIPT with
# --launcher pytorch in NPROC processes through torchrun (one per GPU, or
# CPU workers with the gloo backend). For several nodes set NNODES,
# NODE_RANK, MASTER_ADDR and PORT on each.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$SCRIPT" "$@" --launcher pytorch
