"""Code shared by the tests: the repository root, tiny architectures, tool
loaders and runners, model builders. Fixtures are in conftest.py."""
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from mmengine.config import Config

from fasternet_mm.model_utils import build_model, dummy_sample
from fasternet_mm.testing import randomize_norms  # noqa: F401

SMALL = (96, 128)
REPO = Path(__file__).resolve().parents[1]
# A FasterNet of every kind of layer, small enough for many tests.
TINY_ARCH = dict(
    embed_dim=16,
    depths=(1, 1, 2, 1),
    mlp_ratio=2,
    n_div=4,
    act_cfg=dict(type='GELU'),
    drop_path_rate=0.1)
# TINY_ARCH with ReLU, no drop path and two blocks in stages 2 and 3.
TINY_RELU_ARCH = dict(
    TINY_ARCH,
    depths=(1, 2, 2, 1),
    act_cfg=dict(type='ReLU'),
    drop_path_rate=0.0)
# The same with one block in every stage.
ONE_BLOCK_ARCH = dict(TINY_RELU_ARCH, depths=(1, 1, 1, 1))
# The shapes dataset of the demo runs (conftest.py's ``shapes``): 128x128
# images, 8 to train on and 4 to evaluate.
SHAPES = dict(num_train=8, num_val=4, size=128, seed=1)


def shapes_cfg(path, root):
    """The config at ``path`` on the generated shapes under ``root``, at
    their own size (``SHAPES['size']``)."""
    size = SHAPES['size']
    cfg = Config.fromfile(str(path))
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = f'{root}/'
        for transform in loader.dataset.pipeline:
            if transform.type == 'Resize':
                transform.scale = (size, size)
            elif transform.type == 'Pad':
                transform.size = (size, size)
    cfg.data_root = f'{root}/'
    cfg.test_evaluator.ann_file = f'{root}/annotations/instances_val.json'
    return cfg


def last_metrics(work_dir):
    """The metrics a test run logged to its JSON scalars file."""
    logs = sorted(Path(work_dir).glob('*/*.json'))
    assert logs, f'no metrics log under {work_dir}'
    return json.loads(logs[-1].read_text().splitlines()[-1])


# The demo config trained briefly: 40 iterations (20 epochs of 2 batches of
# 4 images) at a constant lr of 4e-3 after 5 warm-up iterations, the loss
# logged every 5 iterations.
SHORT_DET_TRAINING = [
    'train_cfg.max_epochs=20', 'default_hooks.checkpoint.interval=20',
    'param_scheduler.0.end=5', 'param_scheduler.1.end=20',
    'param_scheduler.1.milestones=[1000]', 'optim_wrapper.optimizer.lr=4e-3',
    'default_hooks.logger.interval=5', 'log_processor.window_size=5'
]
# The loss at the end of that run against its start: 0.157-0.280 over 21
# runs across oneDNN ISA caps, ATen CPU capabilities, 1 and 2 threads and
# seeds 0-2 (docs/testing.md); a model that does not learn stays near 1.
# Its COCO mAP on 4 images, 0.000-0.101 bbox and 0.004-0.139 segm over the
# same runs, is too unstable to assert.
LOSS_FALL = 0.5


def training_losses(work_dir):
    """The smoothed training losses a run logged, in order."""
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert logs, f'no training log under {work_dir}'
    records = map(json.loads, logs[-1].read_text().splitlines())
    return [record['loss'] for record in records if 'loss' in record]


def loss_fall(work_dir):
    """Mean loss of the last four logged windows over the first one."""
    losses = training_losses(work_dir)
    assert len(losses) >= 5, losses
    return sum(losses[-4:]) / 4 / losses[0]


def load_tool(name):
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` in this
    process (much faster than a subprocess). ``name`` may hold a folder
    under ``tools/``, e.g. ``'setup/gpu_check'``."""
    spec = importlib.util.spec_from_file_location(
        f"{name.replace('/', '_')}_tool", REPO / 'tools' / f'{name}.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def run_tool(tool, *args, cwd=REPO, env=None):
    """``tools/<tool>`` in a subprocess of this interpreter, run from
    ``cwd``, with ``env`` set over this process's environment; the
    completed process, its output captured as text."""
    return subprocess.run(
        [sys.executable,
         str(REPO / 'tools' / tool), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, **(env or {})))


def build(cfg):
    """The model of ``cfg`` with random weights, in eval mode."""
    return build_model(cfg).eval()


def forward_once(model, scope, size=SMALL):
    """Predict on one random image, made on the device of ``model``."""
    device = next(model.parameters()).device
    sample = dummy_sample(scope, *size)
    with torch.no_grad():
        return model(
            torch.rand(1, 3, *size, device=device), [sample], mode='predict')


class Exploit:
    """Creates ``marker`` when unpickled: a checkpoint that runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker), ))


def record_stage_formats(model):
    """A list that each forward of FasterNet ``model`` fills with whether
    each stage's blocks ran on a channels-last map."""
    formats = []
    for stage in model.stages:
        stage.blocks[0].register_forward_pre_hook(
            lambda module, args: formats.append(args[0].is_contiguous(
                memory_format=torch.channels_last)))
    return formats


# The COCO-like images resized as COCO's to (1333, 800) by the test
# pipelines, at a third of the size: most are then padded to 32.
WORLD_SCALE = (448, 256)


def world_config(cfg, root, pipeline_pad=True, size_divisor=None):
    """``cfg`` on the COCO-like dataset at ``root``, resized to fit
    ``WORLD_SCALE`` (a square pipeline ``Pad`` to its long side; without
    ``pipeline_pad`` none, and the data preprocessor pads to
    ``size_divisor``)."""
    cfg = Config(copy.deepcopy(cfg.to_dict()))
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = f'{root}/'
    dataset.ann_file = 'annotations/instances.json'
    dataset.data_prefix = dict(img='images/')
    pipeline = []
    for transform in dataset.pipeline:
        if transform.type == 'Resize':
            transform.scale = WORLD_SCALE
        elif transform.type == 'Pad':
            if not pipeline_pad:
                continue
            transform.size = (max(WORLD_SCALE), ) * 2
        pipeline.append(transform)
    dataset.pipeline = pipeline
    # mmseg's inference_model reads this one.
    cfg.test_pipeline = copy.deepcopy(pipeline)
    if size_divisor is not None:
        cfg.model.data_preprocessor.pad_size_divisor = size_divisor
    if 'test_evaluator' in cfg:
        cfg.test_evaluator.ann_file = f'{root}/annotations/instances.json'
    return cfg


def world_images(root):
    """The COCO-like dataset's image files at ``root``."""
    return sorted(Path(root).glob('images/*.jpg'))
