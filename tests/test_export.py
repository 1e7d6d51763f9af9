import os

import pytest
import torch
from helpers import REPO, load_tool, randomize_norms
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import fasternet_mm.export.check as check_module
from fasternet_mm import FasterNet
from fasternet_mm.complexity import weight_bytes
from fasternet_mm.errors import CheckpointError, ExportError
from fasternet_mm.export import (LABEL_AGREEMENT, SCORE_TOLERANCE, TOLERANCE,
                                 TensorOutputs, build_deploy_model,
                                 check_end_to_end, check_outputs,
                                 check_with_onnxruntime, export_model_onnx,
                                 export_onnx, other_size, trace_to_onnx)

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')


def test_deployed_backbone_exports_to_onnx(tmp_path):
    torch.manual_seed(0)
    model = FasterNet(arch='t0')
    model.init_weights()
    model.switch_to_deploy()
    path = str(tmp_path / 'fasternet_t0.onnx')
    image, outputs = export_onnx(model, path, (97, 131))
    weights = weight_bytes(model)
    # The original slicing PConv made files hundreds of times bigger.
    assert os.path.getsize(path) <= 1.1 * weights
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4


RETINANET = REPO / 'configs/retinanet_fasternet_s_fpn_1x_coco.py'
MASK_RCNN_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
SEG_DEMO = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'
# RetinaNet on FasterNet-T0 with 32-channel FPN and head.
SMALL_RETINANET = dict(
    model=dict(
        backbone=dict(arch='t0'),
        neck=dict(in_channels=[40, 80, 160, 320], out_channels=32),
        bbox_head=dict(
            num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1)))


def small_model(config, overrides=None):
    cfg = Config.fromfile(str(config))
    if overrides:
        cfg.merge_from_dict(overrides)
    torch.manual_seed(0)
    return randomize_norms(build_deploy_model(cfg))


def test_single_stage_detector_exports_to_onnx(tmp_path):
    model = TensorOutputs(small_model(RETINANET, SMALL_RETINANET))
    path = str(tmp_path / 'retinanet.onnx')
    image, outputs = export_model_onnx(model, path, (97, 131))
    # Class scores, then box deltas, for each of the 5 FPN levels.
    names = [o.name for o in onnx.load(path).graph.output]
    assert names == [
        f'output_{i}_{level}' for i in (0, 1) for level in range(5)
    ]
    assert [o.shape[1] for o in outputs] == [27] * 5 + [36] * 5
    assert os.path.getsize(path) <= 1.1 * weight_bytes(model)
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4


def test_segmentor_exports_to_onnx(tmp_path):
    model = TensorOutputs(small_model(SEG_DEMO))
    path = str(tmp_path / 'fpn.onnx')
    image, outputs = export_model_onnx(model, path, (97, 131))
    assert [o.name for o in onnx.load(path).graph.output] == ['output']
    assert outputs[0].shape[:2] == (1, 4)  # logits of the 4 classes
    assert os.path.getsize(path) <= 1.1 * weight_bytes(model)
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4


def test_dynamic_export_is_checked_at_another_size(tmp_path):
    detector = TensorOutputs(small_model(RETINANET, SMALL_RETINANET))
    path = str(tmp_path / 'retinanet.onnx')
    image, outputs = export_model_onnx(detector, path, (96, 128), dynamic=True)
    assert image.shape[2:] != (96, 128)
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4
    # mmseg's resize of the logits freezes sizes in the trace: a dynamic
    # segmentor is refused before anything is written.
    segmentor = TensorOutputs(small_model(SEG_DEMO))
    path = tmp_path / 'fpn.onnx'
    with pytest.raises(
            ExportError,
            match=r'^EncoderDecoder cannot be exported with dynamic sizes: '
            r'.* Export without --dynamic'):
        export_model_onnx(segmentor, str(path), (96, 128), dynamic=True)
    assert not path.exists()


def test_two_stage_detector_exports_its_rpn_part_only(tmp_path):
    detector = small_model(MASK_RCNN_DEMO)
    with pytest.raises(
            ExportError,
            match=r"MaskRCNN is a two-stage .* "
            r"mmdeploy. Export part='rpn'"):
        TensorOutputs(detector)
    model = TensorOutputs(detector, part='rpn')
    # Only the modules the part runs: no RoI head weights.
    assert not any(k.startswith('roi_head') for k in model.state_dict())
    path = str(tmp_path / 'mask_rcnn_rpn.onnx')
    image, outputs = export_model_onnx(model, path, (97, 131))
    assert [o.name for o in onnx.load(path).graph.output] == [
        f'{kind}_{level}'
        for kind in ('feature', 'rpn_cls_score', 'rpn_bbox_pred')
        for level in range(5)
    ]
    assert os.path.getsize(path) <= 1.1 * weight_bytes(model)
    assert check_with_onnxruntime(path, image, outputs) <= 1e-4
    with pytest.raises(ExportError, match='EncoderDecoder has none'):
        TensorOutputs(small_model(SEG_DEMO), part='rpn')


def test_checkpoint_must_fit_the_whole_model(tmp_path):
    cfg = Config.fromfile(str(SEG_DEMO))
    init_default_scope('mmseg')
    state_dict = MODELS.build(cfg.model).state_dict()
    state_dict.pop('decode_head.conv_seg.weight')
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state_dict}, path)
    with pytest.raises(
            CheckpointError, match=r"1 missing keys \['decode_head.conv_seg"):
        build_deploy_model(cfg, str(path))


def test_tool_exports_a_config_or_says_why_not(tmp_path, capsys):
    tool = load_tool('export_onnx')
    out = tmp_path / 'fpn.onnx'
    tool.main([str(out), '--config', str(SEG_DEMO), '--shape', '64', '96'])
    assert 'max relative error' in capsys.readouterr().out
    assert out.is_file()
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            str(tmp_path / 'mask_rcnn.onnx'), '--config',
            str(MASK_RCNN_DEMO)
        ])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    # One line, no traceback (other lines are import-time warnings).
    assert 'Traceback' not in error
    assert 'error: MaskRCNN is a two-stage' in error.splitlines()[-1]
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(out), '--config', str(SEG_DEMO), '--dynamic'])
    error = capsys.readouterr().err
    assert exit_info.value.code == 1 and 'Traceback' not in error
    assert 'error: EncoderDecoder cannot be exported with dynamic sizes' \
        in error.splitlines()[-1]


def test_raw_outputs_pass_within_the_tolerance_only(tmp_path):
    conv = torch.nn.Conv2d(3, 4, 3).eval()
    path = str(tmp_path / 'conv.onnx')
    image = torch.rand(1, 3, 17, 23)
    trace_to_onnx(conv, image, path, ['output'],
                  {'image': {2: 'height', 3: 'width'}}, 17)
    with torch.no_grad():
        outputs = conv(image)
    check = check_outputs(path, conv, image, outputs, (17, 23))
    assert check.passed and len(check.lines()) == 1
    assert 'onnxruntime vs PyTorch: max relative error' in check.lines()[0]
    check.raise_if_failed()
    # Off by more than TOLERANCE, at another size than the traced one.
    image = torch.rand(1, 3, 19, 29)
    with torch.no_grad():
        outputs = conv(image) * (1 + 3 * TOLERANCE)
    check = check_outputs(path, conv, image, outputs, (17, 23))
    assert not check.passed
    with pytest.raises(
            ExportError,
            match=r'conv.onnx disagrees with PyTorch: max relative error '
            r'3\.\d+e-04 > 1e-04 at another input size'):
        check.raise_if_failed()


@pytest.mark.parametrize('random_weights', [True, False])
@pytest.mark.parametrize('comparison,passed', [
    (dict(onnx=5, pytorch=5, score=SCORE_TOLERANCE / 2), True),
    (dict(onnx=5, pytorch=5, score=SCORE_TOLERANCE * 2), False),
    (dict(onnx=4, pytorch=5, score=float('inf')), False),
    (dict(agreement=LABEL_AGREEMENT + 1e-4), True),
    (dict(agreement=LABEL_AGREEMENT - 1e-4), False),
])
def test_end_to_end_verdict(tmp_path, monkeypatch, random_weights,
                            comparison, passed):
    """Failures are errors, except with random weights, whose tied scores
    NMS may break either way."""
    monkeypatch.setattr(check_module, 'compare_with_onnxruntime',
                        lambda *args: comparison)
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'0' * 1000)
    check = check_end_to_end(
        str(path), torch.nn.Linear(10, 10),
        dict(image=torch.zeros(1, 3, 96 + 32, 128 + 64)), random_weights)
    assert check.passed == passed
    assert 'onnxruntime vs PyTorch at 128x192: ' in check.lines()[0]
    if passed or random_weights:
        check.raise_if_failed()
        assert len(check.lines()) == 1 + (not passed)
    else:
        with pytest.raises(ExportError,
                           match='disagrees with PyTorch at 128x192'):
            check.raise_if_failed()


def test_dynamic_files_are_checked_at_a_larger_size():
    assert other_size((96, 128)) == (128, 192)
