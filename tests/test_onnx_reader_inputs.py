"""tools/onnx_demo.py and tools/test_onnx.py on broken and hostile inputs:
models that are no ONNX or whose metadata does not fit the graph, images
that are truncated, huge or too elongated, outputs OpenCV cannot write.
Each ends in one line and a non-zero exit before the model runs."""
import json
import resource
import struct
import zlib

import cv2
import numpy as np
import pytest
from helpers import REPO, load_tool

SEG_CONFIG = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'
PREPROCESS = dict(
    resize=dict(keep_ratio=True, scale=[1333, 800],
                interpolation='bilinear'),
    pad=None,
    bgr_to_rgb=True,
    mean=[0.0, 0.0, 0.0],
    std=[1.0, 1.0, 1.0],
    size_divisor=32,
    pad_value=0)


@pytest.fixture(scope='module')
def reader():
    return load_tool('onnx_demo')


def tiny_model(path, task='detection', outputs=None, **metadata):
    """An ONNX file with the inputs of ``task``, constant (empty) ``outputs``
    and the reader's metadata for ``task``, overridden by ``metadata``
    (JSON values; bytes are written as they are)."""
    import onnx
    from onnx import TensorProto, helper
    outputs = outputs or dict(
        boxes=(TensorProto.FLOAT, [0, 4]),
        scores=(TensorProto.FLOAT, [0]),
        labels=(TensorProto.INT64, [0]))
    nodes = [
        helper.make_node(
            'Constant', [], [name],
            value=helper.make_tensor(name, kind, shape, []))
        for name, (kind, shape) in outputs.items()
    ]
    graph = helper.make_graph(
        nodes, 'tiny', [
            helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                          [1, 3, 'height', 'width']),
            helper.make_tensor_value_info('image_size', TensorProto.INT64,
                                          [2]),
            helper.make_tensor_value_info(
                'ori_size' if task == 'semantic' else 'scale_factor',
                TensorProto.INT64 if task == 'semantic' else
                TensorProto.FLOAT, [2])
        ], [
            helper.make_tensor_value_info(name, kind, shape)
            for name, (kind, shape) in outputs.items()
        ])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    values = dict(format=2, task=task, preprocess=PREPROCESS, classes=['a'])
    values.update(metadata)
    for key, value in values.items():
        model.metadata_props.add(
            key=key,
            value=value.decode() if isinstance(value, bytes) else
            json.dumps(value))
    onnx.save(model, str(path))
    return path


def png(path, width, height):
    """A grey PNG of ``width`` x ``height``, written row by row (a 10000 x
    10000 one is 114 KB)."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    data = b''.join(compressor.compress(row) for _ in range(height))
    data += compressor.flush()

    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack(
            '>I', zlib.crc32(kind + body))

    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(
        b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) +
                     chunk(b'IDAT', data) + chunk(b'IEND', b''))
    return path


def demo_error(reader, argv):
    """The one line that ``onnx_demo.py argv`` exits with."""
    with pytest.raises(SystemExit) as info:
        reader.main([str(arg) for arg in argv])
    message = info.value.code
    assert isinstance(message, str), message  # sys.exit(str): status 1
    assert '\n' not in message, message
    return message


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('images') / 'image.jpg'
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (97, 131, 3), np.uint8))
    return path


@pytest.mark.parametrize('content', [b'', b'<html>Not Found</html>',
                                     bytes(range(256)) * 8])
def test_a_file_that_is_no_onnx_model_gets_one_line(reader, image, tmp_path,
                                                    content):
    model = tmp_path / 'model.onnx'
    model.write_bytes(content)
    message = demo_error(reader, [image, model, '--out', tmp_path / 'o.png'])
    assert f'{model} is not an ONNX model that onnxruntime can load' in \
        message


@pytest.mark.parametrize('metadata, expected', [
    (dict(preprocess=b'{"resize": '), "its metadata 'preprocess' is not JSON"),
    (dict(task='semantic'), "its metadata says 'semantic', whose graph has"),
    (dict(task='panoptic'), "metadata task 'panoptic'"),
    (dict(task='instance'), "says 'instance'"),
    (dict(preprocess={'resize': None}), 'preprocess metadata needs'),
])
def test_metadata_that_does_not_fit_gets_one_line(reader, image, tmp_path,
                                                  metadata, expected):
    model = tiny_model(tmp_path / 'model.onnx', **metadata)
    message = demo_error(reader, [image, model, '--out', tmp_path / 'o.png'])
    assert expected in message and str(model) in message


def test_fuzzed_metadata_loads_or_fails_in_one_line(reader, tmp_path):
    """Each field of good metadata, and of its resize and pad, swapped for
    a random JSON value: the model loads with values of the right types,
    or is refused in one line that names the field."""
    import random
    rng = random.Random(4)
    values = [None, True, 0, -1, 3, 1.5, float('nan'), '', 'x', [], {},
              [1, 2], [0, 0, 0], [1.0, 2.0, 3.0], ['a'], {'a': 1}]
    good = dict(
        task='instance',
        mask_threshold=0.5,
        classes=['a'],
        preprocess=dict(
            PREPROCESS,
            pad=dict(size=None, size_divisor=32, pad_to_square=False,
                     value=0)))
    outputs = dict(
        boxes=(1, [0, 4]), scores=(1, [0]), labels=(7, [0]),
        masks=(1, [0, 28, 28]))
    refused = 0
    for trial in range(200):
        metadata = json.loads(json.dumps(good))
        where = rng.choice([metadata, metadata['preprocess'],
                            metadata['preprocess']['resize'],
                            metadata['preprocess']['pad']])
        field = rng.choice(sorted(where))
        where[field] = rng.choice(values)
        path = tiny_model(tmp_path / f'model_{trial}.onnx', outputs=outputs,
                          **metadata)
        try:
            reader.load_model(str(path))
        except reader.ReaderError as err:
            assert '\n' not in str(err) and str(path) in str(err)
            refused += 1
    assert refused > 100


def test_an_output_opencv_cannot_write_fails_before_the_model(
        reader, image, tmp_path):
    missing_model = tmp_path / 'not_read.onnx'
    message = demo_error(reader,
                         [image, missing_model, '--out', tmp_path / 'x.txt'])
    assert 'OpenCV writes no image format of that extension' in message
    message = demo_error(
        reader, [image, missing_model, '--out', tmp_path / 'nope/x.png'])
    assert 'its folder does not exist' in message


@pytest.mark.parametrize('suffix, cut', [('.jpg', 0.5), ('.jpg', 0.99),
                                         ('.png', 0.5), ('.png', 0.99),
                                         ('.bmp', 0.9)])
def test_a_truncated_image_is_refused(reader, tmp_path, suffix, cut):
    rng = np.random.default_rng(1)
    whole = tmp_path / f'whole{suffix}'
    cv2.imwrite(str(whole), rng.integers(0, 256, (97, 131, 3), np.uint8))
    np.testing.assert_array_equal(
        reader.read_image(str(whole)), cv2.imread(str(whole)))
    data = whole.read_bytes()
    path = tmp_path / f'cut{suffix}'
    path.write_bytes(data[:int(len(data) * cut)])
    model = tiny_model(tmp_path / 'model.onnx')
    message = demo_error(reader, [path, model, '--out', tmp_path / 'o.png'])
    kind = {'.jpg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP'}[suffix]
    assert f'Cannot read the image {path}: a truncated {kind}' in message


def test_a_huge_image_is_refused_from_its_header(reader, tmp_path):
    path = png(tmp_path / 'huge.png', 10000, 10000)
    assert path.stat().st_size < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(reader.ReaderError) as info:
        reader.read_image(str(path))
    assert resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert str(info.value) == (
        f'The image {path} is a 10000x10000 PNG (100.0 megapixels), more '
        f'than the limit of 50; raise it with --max-pixels')
    small = png(tmp_path / 'small.png', 300, 200)
    with pytest.raises(reader.ReaderError, match='more than the limit'):
        reader.read_image(str(small), max_pixels=50_000)
    assert reader.read_image(str(small), max_pixels=60_000).shape == (200,
                                                                      300, 3)


def test_an_image_too_elongated_to_resize_is_refused(reader, tmp_path):
    path = png(tmp_path / 'line.png', 3000, 1)
    model = tiny_model(tmp_path / 'model.onnx')
    message = demo_error(reader, [path, model, '--out', tmp_path / 'o.png'])
    assert message.endswith(f'The image {path} is 3000x1: resized to fit '
                            f'(1333, 800) it would be 1333x0 pixels; crop it '
                            f'to a less elongated shape')


def test_test_onnx_refuses_a_model_of_another_task(tmp_path, capsys):
    model = tiny_model(tmp_path / 'detector.onnx')
    with pytest.raises(SystemExit) as info:
        load_tool('test_onnx').main([str(SEG_CONFIG), str(model)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(err)
    assert f'{model} is a detection model (mmdet), and {SEG_CONFIG} an ' \
        f'mmseg config' in err[-1]
