import os

import pytest
import torch

from fasternet_mm import FasterNet
from fasternet_mm.export import check_with_onnxruntime, export_onnx

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def test_deployed_backbone_exports_to_onnx(tmp_path):
    torch.manual_seed(0)
    model = FasterNet(arch='t0')
    model.init_weights()
    model.switch_to_deploy()
    path = str(tmp_path / 'fasternet_t0.onnx')
    image, outputs = export_onnx(model, path, (97, 131))
    weights = sum(t.numel() * t.element_size()
                  for t in model.state_dict().values())
    # The original slicing PConv made files hundreds of times bigger.
    assert os.path.getsize(path) <= 1.1 * weights
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4
