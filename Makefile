# Set-up is idempotent: a second run on a set-up machine installs nothing.
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
export VENV PYTHON TORCH

.PHONY: setup test demo demo-seg lint bench gpu-check

setup:
	@bash tools/setup/setup_env.sh

test: setup
	$(PY) -m pytest tests

lint: setup
	$(PY) -m flake8 fasternet_mm tools tests configs

DEMO_DIR ?= work_dirs/demo
DEMO_CFG := configs/demo/mask_rcnn_fasternet_t0_shapes.py
SEG_DIR ?= work_dirs/demo_seg
SEG_CFG := configs/demo/fpn_fasternet_t0_shapes.py

# Mask R-CNN with FasterNet-T0 on generated shapes: data, train, COCO eval,
# and a few val images drawn as PNG under $(DEMO_DIR)/vis.
demo: setup
	$(PY) tools/make_shapes.py data/shapes
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)
	$(PY) tools/test.py $(DEMO_CFG) $$(cat $(DEMO_DIR)/last_checkpoint) --work-dir $(DEMO_DIR)
	$(PY) tools/image_demo.py data/shapes/val/0000[0-3].png $(DEMO_CFG) $$(cat $(DEMO_DIR)/last_checkpoint) --out-dir $(DEMO_DIR)/vis

# Semantic FPN with FasterNet-T0 on the same shapes as semantic masks.
demo-seg: setup
	$(PY) tools/make_shapes.py data/shapes
	$(PY) tools/train.py $(SEG_CFG) --work-dir $(SEG_DIR)
	$(PY) tools/test.py $(SEG_CFG) $$(cat $(SEG_DIR)/last_checkpoint) --work-dir $(SEG_DIR)

# One-process CPU benchmark of FasterNet against timm and ResNet-50 (ratios).
bench: setup
	$(PY) tools/benchmark.py --arch $(or $(ARCH),s) --out work_dirs/benchmark

# On a GPU machine whose Python has torch with CUDA: set-up into that Python
# (mmcv built for the local GPU unless cached; at most 8 min), the GPU
# benchmark (2.5 min) and then the GPU tests (4 min), each under its own
# limit; one JSON in work_dirs/gpu_check/.  Offline:
# FASTERNET_MM_WHEELHOUSE=DIR (tools/setup/device_wheels.sh DIR).  Example:
#   make gpu-check PY=python3
# --only runs some steps, and a later run on the same machine the others
# (the second adds its steps to the first's JSON); --budget SECONDS caps a
# run.  python3 tools/setup/gpu_check.py --help tells the limits:
#   make gpu-check PY=python3 GPU_CHECK_ARGS="--only setup,bench"
#   make gpu-check PY=python3 GPU_CHECK_ARGS="--only tests"
gpu-check:
	@command -v $(PY) >/dev/null || { echo "gpu-check: no Python '$(PY)'; name one with torch and CUDA: make gpu-check PY=python3" >&2; exit 1; }
	@$(PY) tools/setup/gpu_check.py $(GPU_CHECK_ARGS)
