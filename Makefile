# Set-up is idempotent: a second run on a set-up machine installs nothing.
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
export VENV PYTHON TORCH

.PHONY: setup test demo demo-seg lint

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests

lint: setup
	$(PY) -m flake8 fasternet_mm tools tests configs
