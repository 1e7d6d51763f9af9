"""Scoring a reader's predictions, e.g. of an end-to-end ONNX file, with a
config's test evaluator over its test set; the reader itself
(``tools/onnx_demo.py``), loaded for the tools that use it."""
import importlib.util
import os.path as osp
from typing import Callable, Dict

import numpy as np
import torch

# The reader: a standalone file next to the tools, not part of the package.
READER = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'onnx_demo.py')


def load_reader(path: str = READER):
    """``tools/onnx_demo.py`` as a module."""
    spec = importlib.util.spec_from_file_location('onnx_demo', path)
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    return reader


def evaluate(cfg, predict: Callable[[np.ndarray], Dict[str, np.ndarray]],
             log_interval: int = 0) -> Dict[str, float]:
    """The metrics of ``cfg``'s test evaluator over its test set for the
    predictions of ``predict``: a function from a BGR uint8 image, read
    from the file as the reader reads it, to a reader's result
    (``boxes``, ``scores``, ``labels`` and ``masks`` in the image's pixels,
    or a ``label_map``), e.g. ``tools/onnx_demo.py``'s ``predict``."""
    import cv2
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmengine.structures import InstanceData, PixelData

    init_default_scope(cfg.default_scope)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    logger = MMLogger.get_current_instance()
    for index, batch in enumerate(loader):
        for sample in batch['data_samples']:
            image = cv2.imread(sample.img_path, cv2.IMREAD_COLOR)
            result = predict(image)
            if 'label_map' in result:
                sample.pred_sem_seg = PixelData(
                    data=torch.from_numpy(result['label_map']).long()[None])
            else:
                sample.pred_instances = InstanceData(
                    **{
                        ('bboxes' if key == 'boxes' else key):
                        torch.from_numpy(value)
                        for key, value in result.items()
                    })
        evaluator.process(data_samples=batch['data_samples'], data_batch=batch)
        if log_interval and (index + 1) % log_interval == 0:
            logger.info(f'{index + 1} / {len(loader)} batches')
    return evaluator.evaluate(len(loader.dataset))
