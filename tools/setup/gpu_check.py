"""One check of a GPU machine: set-up, GPU benchmark and GPU tests
(``make gpu-check``); ``--help`` tells the steps and their limits.

The check lives in ``fasternet_mm/gpu_check.py``. It runs before the
set-up has installed mmengine and mmcv, which ``import fasternet_mm``
needs, so this tool loads that file by its path.
"""
import importlib.util
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_check():
    spec = importlib.util.spec_from_file_location(
        'fasternet_mm_gpu_check', osp.join(ROOT, 'fasternet_mm',
                                           'gpu_check.py'))
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check


if __name__ == '__main__':
    sys.exit(load_check().main())
