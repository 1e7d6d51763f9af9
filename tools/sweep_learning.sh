#!/usr/bin/env bash
# The spread behind the learned-quality floors of tests/test_tools.py: runs
# the det or seg demo test's short training (and evaluation) once under the
# given environment and prints one JSON line: the logged losses, their fall
# (mean of the last four windows over the first), and the COCO mAPs or mIoU.
#
#   tools/sweep_learning.sh det|seg SEED [VAR=VALUE ...]
#   e.g. tools/sweep_learning.sh det 1 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1
set -euo pipefail
task=$1 seed=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$here/.venv/bin/python}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cd "$here"
"$py" -c "from fasternet_mm.shapes import generate; generate('$root/shapes', num_train=8, num_val=4, size=128, seed=1)"
if [[ $task == det ]]; then
    cfg=configs/demo/mask_rcnn_fasternet_t0_shapes.py
    train=(train_cfg.max_epochs=20 default_hooks.checkpoint.interval=20
           param_scheduler.0.end=5 param_scheduler.1.end=20
           'param_scheduler.1.milestones=[1000]' optim_wrapper.optimizer.lr=4e-3
           default_hooks.logger.interval=5 log_processor.window_size=5)
elif [[ $task == seg ]]; then
    cfg=configs/demo/fpn_fasternet_t0_shapes.py
    train=(train_cfg.max_iters=20 param_scheduler.0.end=5
           param_scheduler.1.begin=5 param_scheduler.1.end=20
           default_hooks.checkpoint.interval=20 default_hooks.logger.interval=4
           log_processor.window_size=4)
else
    echo "usage: $0 det|seg SEED [VAR=VALUE ...]; got '$task'" >&2
    exit 2
fi
data=(--cfg-options "data_root=$root/shapes/")
env "$@" "$py" tools/train.py "$cfg" --work-dir "$root/w" "${data[@]}" \
    "${train[@]}" "randomness.seed=$seed" > "$root/train.log" 2>&1
checkpoint=$(cat "$root/w/last_checkpoint")
env "$@" "$py" tools/test.py "$cfg" "$checkpoint" --work-dir "$root/w" \
    "${data[@]}" > "$root/test.log" 2>&1
if [[ $task == det ]]; then
    env "$@" "$py" tools/test.py "$cfg" "$checkpoint" --work-dir "$root/d" \
        --deploy --amp "${data[@]}" > "$root/bf16.log" 2>&1
fi
"$py" - "$root" "$task" "$seed" "$*" <<'PY'
import glob, json, sys
root, task, seed, environment = sys.argv[1:]
def metrics(work_dir):
    logs = sorted(glob.glob(f'{root}/{work_dir}/*/*.json'))
    return json.loads(open(logs[-1]).read().splitlines()[-1]) if logs else {}
log = sorted(glob.glob(f'{root}/w/*/vis_data/scalars.json'))[0]
losses = [r['loss'] for r in map(json.loads, open(log)) if 'loss' in r]
keys = ('coco/bbox_mAP', 'coco/segm_mAP') if task == 'det' else ('mIoU', 'aAcc')
line = dict(task=task, seed=int(seed), env=environment,
            fall=round(sum(losses[-4:]) / 4 / losses[0], 3),
            losses=[round(x, 3) for x in losses],
            **{k: metrics('w').get(k) for k in keys})
if task == 'det':
    line.update({f'bf16_deploy/{k}': metrics('d').get(k) for k in keys})
print(json.dumps(line))
PY
