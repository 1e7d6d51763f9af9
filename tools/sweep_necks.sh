#!/usr/bin/env bash
# One run of the neck ablation of docs/pconv.md: trains an ablation config
# with a seed (and the schedule scaled by SCALE: 1 = 20 epochs = 300
# iterations, 4 = 80 epochs), evaluates it on the 320 validation images and
# prints one JSON line: COCO box AP, AP50, AP75, AP by size, the final
# training loss (mean of the last four logged windows) and the time taken.
#
#   tools/make_shapes.py data/shapes_neck --num-val 320
#   tools/sweep_necks.sh configs/ablation/rtmdet_tiny_fasternet_t0_neck_shapes.py SEED [SCALE]
set -euo pipefail
cfg=$1 seed=$2 scale=${3:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$here/.venv/bin/python}
cd "$here"
name=$(basename "$cfg" .py)
work=${WORK:-work_dirs/neck_ablation}/${name}_s${seed}_x${scale}
epochs=$((20 * scale))
mkdir -p "$(dirname "$work")"
start=$(date +%s)
"$py" tools/train.py "$cfg" --work-dir "$work" --cfg-options \
    "randomness.seed=$seed" "train_cfg.max_epochs=$epochs" \
    "train_cfg.val_interval=$epochs" "default_hooks.checkpoint.interval=$epochs" \
    "param_scheduler.1.begin=$((epochs / 2))" "param_scheduler.1.end=$epochs" \
    "param_scheduler.1.T_max=$((epochs - epochs / 2))" > "$work.train.log" 2>&1
trained=$(date +%s)
"$py" tools/test.py "$cfg" "$(cat "$work/last_checkpoint")" \
    --work-dir "$work/test" > "$work.test.log" 2>&1
"$py" - "$work" "$name" "$seed" "$scale" "$((trained - start))" <<'PY'
import glob, json, sys
work, name, seed, scale, seconds = sys.argv[1:]
log = sorted(glob.glob(f'{work}/2*/vis_data/scalars.json'))[-1]
losses = [r['loss'] for r in map(json.loads, open(log)) if 'loss' in r]
test = sorted(glob.glob(f'{work}/test/*/*.json'))[-1]
metrics = json.loads(open(test).read().splitlines()[-1])
keys = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
print(json.dumps(dict(
    config=name, seed=int(seed), scale=int(scale),
    **{k: round(100 * metrics[f'coco/bbox_{k}'], 1) for k in keys},
    final_loss=round(sum(losses[-4:]) / 4, 4), train_s=int(seconds))))
PY
