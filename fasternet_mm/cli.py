"""What the tools share: loading a config with mmdet's and mmseg's
command-line conventions, loading the standalone ONNX reader, and turning
known errors into one clear line instead of a traceback."""
import argparse
import contextlib
import functools
import os.path as osp
import sys
import warnings
from typing import Any, Callable, Optional

from mmengine.config import Config, ConfigDict, DictAction

from .errors import MissingFileError, PreflightError, UserError

SCOPES = ('mmdet', 'mmseg')


def add_common_args(parser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value; data_root=PATH '
        'also moves every dataset and evaluator that used the old root')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_deprecated_flag(parser: argparse.ArgumentParser,
                        old: str,
                        new: str,
                        convert: Optional[Callable[[Any], Any]] = None,
                        **kwargs) -> None:
    """Accept ``old``, a flag's former name, as ``new``: it warns, and
    stores its value (through ``convert``, where the format changed) where
    ``new`` does. It is left out of ``--help``; ``kwargs`` are its
    ``add_argument`` arguments (``nargs``, ``choices``, ...)."""
    dest = new.lstrip('-').replace('-', '_')

    class DeprecatedFlag(argparse.Action):

        def __call__(self, parser, namespace, values, option_string=None):
            warnings.warn(
                f'{old} is deprecated; use {new}', FutureWarning, stacklevel=2)
            setattr(namespace, dest,
                    values if convert is None else convert(values))

    parser.add_argument(
        old, dest=dest, action=DeprecatedFlag, help=argparse.SUPPRESS,
        **kwargs)


def load_config(path: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """Read a config, apply ``--cfg-options`` and choose its scope."""
    if not osp.isfile(path):
        raise MissingFileError(f'Config file not found: {path!r}')
    with missing_files_are_user_errors():  # e.g. a missing _base_ file
        cfg = Config.fromfile(path)
    old_root = cfg.get('data_root')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if old_root and cfg.get('data_root') != old_root:
        move_data_root(cfg, old_root, cfg.data_root)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise PreflightError(
            f'{path}: default_scope={scope!r}; these tools serve mmdet and '
            f'mmseg configs, whose default_scope is one of {SCOPES}')
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def move_data_root(cfg: Config, old_root: str, new_root: str) -> None:
    """Re-point every string that starts with ``old_root`` in the data and
    evaluator settings: upstream configs copy ``data_root`` into each
    dataset and into CocoMetric's ``ann_file`` when they are parsed."""
    new_root = new_root if new_root.endswith(
        '/') or not old_root.endswith('/') else new_root + '/'

    def rewrite(node: Any) -> Any:
        if isinstance(node, str) and node.startswith(old_root):
            return new_root + node[len(old_root):]
        if isinstance(node, (dict, ConfigDict)):
            for key in list(node):
                node[key] = rewrite(node[key])
        elif isinstance(node, list):
            node[:] = [rewrite(item) for item in node]
        return node

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator'):
        if cfg.get(key) is not None:
            rewrite(cfg[key])


def build_runner(cfg: Config):
    """The Runner for a config, as mmdet's and mmseg's tools build it; on a
    CPU-only machine a ``pytorch`` launch first starts gloo."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .distributed import init_cpu_distributed
    init_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


@contextlib.contextmanager
def missing_files_are_user_errors():
    """Inside this block a ``FileNotFoundError`` means that a path the user
    gave (a config, a checkpoint, an image) is wrong: it becomes a
    :class:`MissingFileError`, which :func:`exit_on_user_error` prints as
    one line. Keep training and testing loops outside the block."""
    try:
        yield
    except MissingFileError:
        raise
    except FileNotFoundError as err:
        raise MissingFileError(str(err)) from None


def exit_on_user_error(main: Callable) -> Callable:
    """Run ``main``; print a :class:`~fasternet_mm.errors.UserError` as one
    line, ``<tool>: error: <message>``, and exit 1. Anything else keeps its
    traceback, a plain ``FileNotFoundError`` too: raised inside a Runner's
    loop (a missing image in the middle of an epoch), it needs it; see
    :func:`missing_files_are_user_errors`."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            prog = osp.basename(sys.argv[0]) if sys.argv else 'fasternet_mm'
            sys.stderr.write(f'{prog}: error: {err}\n')
            sys.exit(1)

    return wrapper
