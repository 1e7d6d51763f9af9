"""int8 end-to-end files (tools/export_onnx.py --end-to-end --int8): the
calibration inputs and the flags. The int8 file of a trained model is
tested in test_onnx_end_to_end.py, which trains one."""
import json

import numpy as np
import pytest
from helpers import REPO, load_tool, shapes_cfg

from fasternet_mm.export import (CalibrationImages, build_deploy_model,
                                 calibration_image_paths, end_to_end_graph,
                                 input_names, reader_metadata)

onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxruntime.quantization')

MASK_RCNN = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'


def test_calibration_inputs_are_the_test_pipelines(shapes, tmp_path):
    """Each calibration input is what mmdet's test pipeline and data
    preprocessor make of a training image, under the graph's input
    names."""
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    cfg = shapes_cfg(MASK_RCNN, shapes)
    config = tmp_path / 'mask_rcnn.py'
    cfg.dump(str(config))
    tool = load_tool('export_onnx')
    args = tool.parse_args([
        '--config',
        str(config), '--end-to-end', 'unused.onnx', '--int8',
        '--calib-images', '2'
    ])
    int8 = tool.quantization(cfg, args)
    assert len(set(int8.paths)) == 2
    assert all('/train/' in path for path in int8.paths), int8.paths
    model = build_deploy_model(cfg)
    graph = end_to_end_graph(model)
    spec = json.loads(reader_metadata(cfg, graph)['preprocess'])
    calibration = CalibrationImages(
        int8.paths, lambda path: int8.prepare(path, spec),
        input_names(graph))
    init_default_scope('mmdet')
    pipeline = Compose([
        transform for transform in cfg.test_dataloader.dataset.pipeline
        if transform['type'] != 'LoadAnnotations'
    ])
    for path in int8.paths:
        inputs = calibration.get_next()
        assert list(inputs) == ['image', 'image_size', 'scale_factor']
        packed = pipeline(dict(img_path=path))
        data = model.data_preprocessor(
            dict(inputs=[packed['inputs']],
                 data_samples=[packed['data_samples']]), False)
        sample = data['data_samples'][0]
        np.testing.assert_allclose(
            inputs['image'], data['inputs'].numpy(), atol=1e-4)
        assert tuple(inputs['image_size']) == tuple(sample.img_shape)
        np.testing.assert_allclose(inputs['scale_factor'],
                                   sample.scale_factor, rtol=1e-6)
    assert calibration.get_next() is None


@pytest.mark.parametrize('flags, message', [
    (['--arch', 's', 'out.onnx', '--int8'], '--int8 quantizes end-to-end'),
    (['--end-to-end', 'o.onnx', '--int8', '--calib-images', '0'],
     '--calib-images 0: give at least 1'),
    (['--end-to-end', 'o.onnx', '--calib-images', '4'],
     '--calib-images, --int8-parts and --quantizer need'),
    (['--end-to-end', 'o.onnx', '--int8', '--int8-parts', 'rpn'],
     "invalid choice: 'rpn'"),
])
def test_bad_int8_flags_are_refused_in_one_line(flags, message, capsys):
    if '--end-to-end' in flags:
        flags = ['--config', str(MASK_RCNN)] + flags
    with pytest.raises(SystemExit) as exit_info:
        load_tool('export_onnx').parse_args(flags)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error, error


def test_too_many_calibration_images_are_refused(shapes):
    from fasternet_mm.errors import ExportError
    cfg = shapes_cfg(MASK_RCNN, shapes)
    with pytest.raises(ExportError, match='calibration images: 9, but the '
                       'dataset has 8'):
        calibration_image_paths(cfg, 9)
