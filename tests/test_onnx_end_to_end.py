"""End-to-end ONNX models (tools/export_onnx.py --end-to-end) and their
reader (tools/onnx_demo.py) against mmdet's and mmseg's predict."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, SHAPES, load_tool, randomize_norms
from mmengine.config import Config

from fasternet_mm.complexity import weight_bytes
from fasternet_mm.end_to_end import (end_to_end_graph, export_end_to_end,
                                     reader_metadata)
from fasternet_mm.errors import ExportError
from fasternet_mm.export import build_deploy_model
from fasternet_mm.shapes import CLASSES

onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')

MASK_RCNN = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
RTMDET = REPO / 'configs/ablation/rtmdet_tiny_fasternet_t0_shapes.py'
RTMDET_COCO = REPO / 'configs/rtmdet_tiny_fasternet_t0_pafpn_coco.py'
RETINANET = REPO / 'configs/retinanet_fasternet_s_fpn_1x_coco.py'
SEMANTIC_FPN = REPO / 'configs/demo/fpn_fasternet_t0_shapes.py'
UPERNET = REPO / 'configs/upernet_fasternet_s_ade20k.py'
YOLOX = REPO / 'configs/yolox_s_fasternet_t0_pafpn_coco.py'
# The side of the shapes' images.
SIZE = SHAPES['size']


@pytest.fixture(scope='module')
def reader():
    return load_tool('onnx_demo')


def shapes_config(path, root, work_dir):
    """``path`` on the generated shapes at their own size, written out as
    a config file for the tools."""
    cfg = Config.fromfile(str(path))
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = f'{root}/'
        for transform in loader.dataset.pipeline:
            if transform.type == 'Resize':
                transform.scale = (SIZE, SIZE)
            elif transform.type == 'Pad':
                transform.size = (SIZE, SIZE)
    cfg.data_root = f'{root}/'
    cfg.test_evaluator.ann_file = f'{root}/annotations/instances_val.json'
    cfg.work_dir = str(work_dir)
    out = Path(work_dir) / Path(path).name
    cfg.dump(str(out))
    return out


class Exported:
    """A trained model's config, checkpoint, deployed PyTorch model and
    end-to-end ONNX file (written by the tool)."""

    def __init__(self, config, checkpoint, onnx_path):
        load_tool('export_onnx').main([
            '--config',
            str(config), '--checkpoint',
            str(checkpoint), '--end-to-end',
            str(onnx_path)
        ])
        self.config = config
        self.checkpoint = checkpoint
        self.path = onnx_path
        self.cfg = Config.fromfile(str(config))
        self.model = build_deploy_model(self.cfg, str(checkpoint))


def train(config, shapes, work_dir, iterations, lr, batch):
    """Train ``config`` on the shapes for a few iterations at a constant
    ``lr`` after 5 warm-up iterations; export the result."""
    from mmengine.runner import Runner

    from fasternet_mm.checkpoint import mmengine_checkpoints
    config = shapes_config(config, shapes, work_dir)
    cfg = Config.fromfile(str(config))
    epochs = iterations * batch // 8  # 8 training images
    cfg.train_dataloader.batch_size = batch
    cfg.train_cfg.max_epochs = epochs
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = epochs
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=5)
    ]
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.custom_hooks = []  # RTMDet's EMA
    with mmengine_checkpoints():
        Runner.from_cfg(cfg).train()
    name = Path(config).stem
    return Exported(config, work_dir / f'epoch_{epochs}.pth',
                    work_dir / f'{name}.onnx')


@pytest.fixture(scope='module')
def mask_rcnn(shapes, tmp_path_factory):
    """The demo Mask R-CNN after 30 iterations of batch 4."""
    return train(MASK_RCNN, shapes, tmp_path_factory.mktemp('mask_rcnn'),
                 30, 4e-3, 4)


@pytest.fixture(scope='module')
def rtmdet(shapes, tmp_path_factory):
    """The RTMDet-tiny FasterNet-T0 ablation base after 40 iterations of
    batch 8, at lr 2e-3: 72-300 boxes per val image above the score
    threshold, the best scoring 0.03-0.999 (measured uncapped, 1 and 2
    threads, ATEN_CPU_CAPABILITY=default, ONEDNN_MAX_CPU_ISA=AVX2). Fewer
    iterations leave every score at or below the prior (12 at 1e-3: no box
    above the threshold); at 4e-3 scores saturate to 1.0 within 20
    iterations and tie, and NMS may then keep either of two tied boxes."""
    return train(RTMDET, shapes, tmp_path_factory.mktemp('rtmdet'), 40,
                 2e-3, 8)


def run_onnx(path, tensor):
    runtime = onnxruntime.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
    names = [output.name for output in runtime.get_outputs()]
    return dict(zip(names, runtime.run(None, {'image': tensor})))


def pytorch_predict(model, tensor):
    """mmdet's or mmseg's predict for a preprocessed input, with the input's
    size as the image size (no rescaling)."""
    from mmdet.structures import DetDataSample
    from mmseg.structures import SegDataSample
    shape = tuple(tensor.shape[2:])
    meta = dict(
        img_shape=shape,
        ori_shape=shape,
        pad_shape=shape,
        batch_input_shape=shape,
        scale_factor=(1., 1.))
    segmentor = type(model).__name__ == 'EncoderDecoder'
    sample = (SegDataSample if segmentor else DetDataSample)(metainfo=meta)
    with torch.no_grad():
        result = model.predict(torch.from_numpy(tensor), [sample])[0]
    return result.pred_sem_seg.data[0] if segmentor else result.pred_instances


def iou_matrix(a, b):
    """Pairwise IoU of (x1, y1, x2, y2) boxes."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((high - low).clip(min=0), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def assert_same_detections(outputs, expected, reader, threshold=0.5):
    """One-to-one: same count, and each ONNX detection matches a PyTorch
    one of its class with box IoU >= 0.99, |score difference| <= 1e-3 and,
    with masks (pasted by the reader), mask IoU >= 0.98."""
    boxes = outputs['boxes']
    expected_boxes = expected.bboxes.numpy()
    assert len(boxes) == len(expected_boxes)
    iou = iou_matrix(boxes, expected_boxes)
    iou[outputs['labels'][:, None] != expected.labels.numpy()[None]] = -1
    unmatched = set(range(len(expected_boxes)))
    for index in range(len(boxes)):  # best first
        match = max(unmatched, key=lambda j: iou[index, j])
        unmatched.remove(match)
        assert iou[index, match] >= 0.99, (index, iou[index, match])
        assert abs(outputs['scores'][index] -
                   float(expected.scores[match])) <= 1e-3
        if 'masks' in outputs:
            height, width = expected.masks.shape[1:]
            mask = reader.paste_masks(outputs['masks'][index:index + 1],
                                      boxes[index:index + 1], height, width,
                                      threshold)[0]
            reference = expected.masks[match].numpy()
            union = (mask | reference).sum()
            assert union == 0 or (mask & reference).sum() / union >= 0.98


def val_inputs(reader, metadata, shapes):
    """The val images as the reader prepares them, and one of them resized
    to an odd size (padded by the preprocessor)."""
    images = [
        cv2.imread(str(path)) for path in sorted(shapes.glob('val/*.png'))
    ]
    images.append(cv2.resize(images[0], (131, 97)))
    return [reader.preprocess(image, metadata)[0] for image in images]


def test_mask_rcnn_equals_predict(mask_rcnn, reader, shapes):
    _, metadata = reader.load_model(str(mask_rcnn.path))
    counts = []
    for tensor in val_inputs(reader, metadata['preprocess'], shapes):
        outputs = run_onnx(mask_rcnn.path, tensor)
        assert_same_detections(outputs,
                               pytorch_predict(mask_rcnn.model, tensor),
                               reader)
        counts.append(len(outputs['scores']))
    # Trained, the model finds shapes; 20 is max_per_img.
    assert sum(counts) >= 20, counts


def constant(graph, name):
    """The value of a graph's initializer or Constant node output."""
    for tensor in graph.initializer:
        if tensor.name == name:
            return onnx.numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == 'Constant' and node.output[0] == name:
            return onnx.numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


def assert_standard_onnx(path, graph_module):
    """Opset 17, standard operators only (no custom domain: mmcv,
    mmdeploy, ...), and a file not much larger than the weights."""
    model = onnx.load(str(path))
    assert {node.domain for node in model.graph.node} <= {'', 'ai.onnx'}
    assert [(o.domain, o.version) for o in model.opset_import] == [('', 17)]
    onnx.checker.check_model(model)
    assert os.path.getsize(path) <= 1.1 * weight_bytes(graph_module)
    return model


def test_mask_rcnn_graph_is_standard_onnx(mask_rcnn):
    model = assert_standard_onnx(mask_rcnn.path,
                                 end_to_end_graph(mask_rcnn.model))
    graph = model.graph
    kinds = {node.op_type for node in graph.node}
    assert {'NonMaxSuppression', 'RoiAlign', 'TopK'} <= kinds
    for node in graph.node:
        if node.op_type == 'RoiAlign':
            attributes = {a.name: onnx.helper.get_attribute_value(a)
                          for a in node.attribute}
            # mmcv's aligned=True, sampling_ratio=2 of the demo config.
            assert attributes['coordinate_transformation_mode'] == \
                b'half_pixel'
            assert attributes['mode'] == b'avg'
            assert attributes['sampling_ratio'] == 2
    # Four levels for the box head and four for the mask head.
    assert sum(node.op_type == 'RoiAlign' for node in graph.node) == 8
    # The RPN's and the second stage's NMS, with the test config's
    # max_per_img and IoU thresholds.
    nms = [(int(constant(graph, node.input[2])[0]),
            round(float(constant(graph, node.input[3])[0]), 4))
           for node in graph.node if node.op_type == 'NonMaxSuppression']
    assert nms == [(100, 0.7), (20, 0.5)]
    size = [d.dim_param or d.dim_value
            for d in graph.input[0].type.tensor_type.shape.dim]
    assert size == [1, 3, 'height', 'width']
    assert [o.name for o in graph.output] == [
        'boxes', 'scores', 'labels', 'masks'
    ]
    metadata = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert metadata['task'] == 'instance'
    assert metadata['classes'] == list(CLASSES)
    assert metadata['mask_threshold'] == 0.5
    preprocess = metadata['preprocess']
    assert preprocess['resize'] == dict(
        scale=[SIZE, SIZE], keep_ratio=True, interpolation='bilinear')
    assert preprocess['size_divisor'] == 32 and preprocess['bgr_to_rgb']


def test_test_config_settings_are_in_the_graph(mask_rcnn):
    cfg = mask_rcnn.cfg.copy()
    cfg.model.test_cfg.rcnn.max_per_img = 3
    cfg.model.test_cfg.rcnn.score_thr = 0.3
    cfg.model.test_cfg.rpn.max_per_img = 7
    graph = end_to_end_graph(
        build_deploy_model(cfg, str(mask_rcnn.checkpoint)))
    image = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert len(graph.proposals(graph.neck(graph.backbone(image)),
                                   (torch.tensor(SIZE), ) * 2)) == 7
        boxes, scores, labels, masks = graph(image)
    assert len(scores) <= 3 and (scores > 0.3).all()


def test_empty_detections_keep_their_shapes(mask_rcnn, tmp_path):
    graph = end_to_end_graph(mask_rcnn.model)
    graph.score_thr = 1.0  # above every softmax score
    path = tmp_path / 'none.onnx'
    export_end_to_end(graph, str(path), (SIZE, SIZE))
    outputs = run_onnx(path, np.random.rand(1, 3, 96, 160).astype('float32'))
    assert [v.shape for v in outputs.values()] == [(0, 4), (0, ), (0, ),
                                                   (0, 28, 28)]


def test_roi_features_equal_mmdet_extractor_on_every_level(tmp_path):
    """ONNX RoiAlign with the level mapping against mmdet's
    SingleRoIExtractor and mmcv's RoIAlign, for boxes of every level and
    on the level boundaries (sqrt(w * h) = 112, 224, 448)."""
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from fasternet_mm.end_to_end import RoiFeatures
    extractor = SingleRoIExtractor(
        dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=8,
        featmap_strides=[4, 8, 16, 32])
    generator = torch.Generator().manual_seed(0)
    features = [
        torch.rand(1, 8, 320 // s, 480 // s, generator=generator)
        for s in (4, 8, 16, 32)
    ]
    sides = torch.tensor([20., 111.9, 112., 150., 224., 300., 448., 470.])
    corners = torch.rand(len(sides), 2, generator=generator) * 100 - 20
    boxes = torch.cat([corners, corners + sides[:, None]], dim=1)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    expected_levels = extractor.map_roi_levels(rois, 4)
    assert set(expected_levels.tolist()) == {0, 1, 2, 3}
    with torch.no_grad():
        expected = extractor(tuple(features), rois)
    module = RoiFeatures(extractor)
    assert torch.equal(module.levels(boxes), expected_levels)

    class Pooled(torch.nn.Module):

        def forward(self, boxes, *features):
            return module(features, boxes)

    path = str(tmp_path / 'roi.onnx')
    names = [f'feature{i}' for i in range(4)]
    torch.onnx.export(
        Pooled(), (boxes[:3], *features),
        path,
        input_names=['boxes'] + names,
        dynamic_axes={'boxes': {
            0: 'boxes'
        }},
        opset_version=17,
        dynamo=False)
    runtime = onnxruntime.InferenceSession(path)
    pooled, = runtime.run(
        None, dict(boxes=boxes.numpy(), **{
            n: f.numpy()
            for n, f in zip(names, features)
        }))
    assert np.abs(pooled - expected.numpy()).max() < 1e-5


def test_reader_pastes_masks_as_mmdet():
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head

    reader = load_tool('onnx_demo')
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 28, 28, generator=generator)
    # Boxes as mmdet hands them on: clipped to the image, some at its edges.
    corners = torch.rand(40, 2, generator=generator) * 120 - 10
    sizes = torch.rand(40, 2, generator=generator) * 60 + 0.3
    height, width = 97, 131
    boxes = torch.cat([corners, corners + sizes], dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    boxes = boxes[(boxes[:, 2:] > boxes[:, :2]).all(1)]
    pasted = reader.paste_masks(masks.numpy(), boxes.numpy(), height, width,
                                0.5)
    for mask, box, ours in zip(masks, boxes, pasted):
        expected, region = fcn_mask_head._do_paste_mask(
            mask[None, None], box[None], height, width)
        full = np.zeros((height, width), bool)
        full[region] = (expected[0] >= 0.5).numpy()
        assert (full != ours).sum() == 0


@pytest.mark.parametrize('config', [MASK_RCNN, RTMDET_COCO, SEMANTIC_FPN])
def test_reader_preprocesses_as_the_test_pipeline(config, reader, tmp_path):
    """The reader's input for an odd-size image file equals the test
    pipeline's and data preprocessor's: the demo's resize and padding to
    32, RTMDet's resize to 640 and Pad with 114, no resize for the
    segmentor."""
    from mmengine.dataset import Compose
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.default_scope)
    path = str(tmp_path / 'odd.png')
    cv2.imwrite(path, np.random.default_rng(0).integers(
        0, 256, (97, 131, 3), dtype=np.uint8))
    pipeline = Compose([
        t for t in cfg.test_dataloader.dataset.pipeline
        if t.type != 'LoadAnnotations'
    ])
    packed = pipeline(dict(img_path=path, img_id=0, seg_fields=[]))
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    expected = preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]),
        False)['inputs']
    graph = end_to_end_graph(build_deploy_model(cfg))
    preprocess = json.loads(reader_metadata(cfg, graph)['preprocess'])
    tensor, info = reader.preprocess(cv2.imread(path), preprocess)
    assert tensor.shape == tuple(expected.shape)
    assert np.abs(tensor - expected.numpy()).max() == 0
    sample = packed['data_samples']
    assert info['image_shape'] == tuple(sample.img_shape)
    assert info['ori_shape'] == (97, 131)
    if 'scale_factor' in sample:
        assert info['scale_factor'] == tuple(sample.scale_factor)


def fake_packages(root, names):
    """A directory of packages that cannot be imported, to put first on
    PYTHONPATH."""
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / '__init__.py').write_text(
            f'raise ImportError("{name} is blocked for this test")\n')
    return root


def test_reader_runs_without_torch_or_mmdet(mask_rcnn, shapes, tmp_path):
    blocked = fake_packages(tmp_path / 'blocked', [
        'torch', 'torchvision', 'mmcv', 'mmdet', 'mmseg', 'mmengine',
        'fasternet_mm'
    ])
    env = dict(os.environ, PYTHONPATH=str(blocked))
    probe = subprocess.run([sys.executable, '-c', 'import torch'],
                           capture_output=True,
                           text=True,
                           env=env)
    assert 'torch is blocked' in probe.stderr
    image = shapes / 'val/00000.png'
    out = tmp_path / 'drawn.png'
    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/onnx_demo.py'),
        str(image),
        str(mask_rcnn.path), '--out',
        str(out), '--score-thr', '0'
    ],
                            capture_output=True,
                            text=True,
                            env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'drawn to' in result.stdout and ' 0 detections' not in \
        result.stdout
    source, drawn = cv2.imread(str(image)), cv2.imread(str(out))
    assert drawn.shape == source.shape
    assert (drawn != source).any(axis=-1).mean() > 0.01


def test_coco_map_through_onnx_equals_tools_test(mask_rcnn, tmp_path):
    load_tool('test').main([
        str(mask_rcnn.config),
        str(mask_rcnn.checkpoint), '--work-dir',
        str(tmp_path)
    ])
    logs = sorted(tmp_path.glob('*/*.json'))
    expected = json.loads(logs[-1].read_text().splitlines()[-1])
    metrics = load_tool('test_onnx').main(
        [str(mask_rcnn.config), str(mask_rcnn.path)])
    # No floor on the mAP itself: after 30 iterations it is 0.0 bbox under
    # ATEN_CPU_CAPABILITY=default on the same CPU that scores 0.03 without
    # it. The detections are compared one by one in
    # test_mask_rcnn_equals_predict.
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert abs(metrics[key] - expected[key]) <= 0.005, key


def random_model(config, overrides=None):
    cfg = Config.fromfile(str(config))
    if overrides:
        cfg.merge_from_dict(overrides)
    torch.manual_seed(0)
    return cfg, randomize_norms(build_deploy_model(cfg))


def exported(model, path, shape=(SIZE, 160)):
    graph = end_to_end_graph(model)
    export_end_to_end(graph, str(path), shape)
    assert_standard_onnx(path, graph)
    return graph


def test_rtmdet_equals_predict(rtmdet, reader, shapes):
    assert_standard_onnx(rtmdet.path, end_to_end_graph(rtmdet.model))
    _, metadata = reader.load_model(str(rtmdet.path))
    for tensor in val_inputs(reader, metadata['preprocess'], shapes):
        outputs = run_onnx(rtmdet.path, tensor)
        assert len(outputs['scores']) > 20
        assert_same_detections(outputs,
                               pytorch_predict(rtmdet.model, tensor), reader)


def test_retinanet_equals_predict(reader, tmp_path):
    """RetinaNet (nine anchors per place, sigmoid classes) with random
    weights on noise. Not with randomize_norms, nor on the upscaled
    shapes: both give ties (saturated scores of 1.0, flat regions of equal
    scores), and NMS may then keep either of two tied boxes."""
    cfg = Config.fromfile(str(RETINANET))
    cfg.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(arch='t0'),
                neck=dict(in_channels=[40, 80, 160, 320], out_channels=32),
                bbox_head=dict(
                    num_classes=3,
                    in_channels=32,
                    feat_channels=32,
                    stacked_convs=1))))
    torch.manual_seed(0)
    model = build_deploy_model(cfg)
    path = tmp_path / 'retinanet.onnx'
    exported(model, path)
    generator = np.random.default_rng(0)
    for shape in ((SIZE, 160), (96, SIZE), (160, 224)):
        tensor = generator.standard_normal((1, 3, *shape), dtype=np.float32)
        outputs = run_onnx(path, tensor)
        assert len(outputs['scores']) == 100  # max_per_img
        assert_same_detections(outputs, pytorch_predict(model, tensor),
                               reader)


@pytest.mark.parametrize('config, overrides', [
    (SEMANTIC_FPN, None),
    (UPERNET,
     dict(
         model=dict(
             backbone=dict(arch='t0'),
             decode_head=dict(
                 in_channels=[40, 80, 160, 320], channels=32,
                 num_classes=4),
             auxiliary_head=dict(in_channels=160, num_classes=4)))),
])
def test_segmentor_label_map_equals_predict(config, overrides, tmp_path):
    _, model = random_model(config, overrides)
    path = tmp_path / 'segmentor.onnx'
    exported(model, path)
    for shape in ((SIZE, 160), (97, 131), (160, 224)):
        tensor = np.random.default_rng(0).random((1, 3, *shape),
                                                 dtype=np.float32)
        label_map = run_onnx(path, tensor)['label_map']
        expected = pytorch_predict(model, tensor).numpy()
        assert label_map.shape == expected.shape == shape
        assert (label_map == expected).mean() >= 0.999
        assert len(np.unique(expected)) > 1


def test_tool_refuses_what_it_cannot_export(capsys, tmp_path):
    out = str(tmp_path / 'out.onnx')
    with pytest.raises(SystemExit):
        load_tool('export_onnx').main(['--end-to-end', out, '--arch', 't0'])
    assert '--end-to-end need --config' in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        load_tool('export_onnx').main(
            ['--config', str(YOLOX), '--end-to-end', out])
    assert info.value.code == 1
    error = capsys.readouterr().err
    assert 'Traceback' not in error
    assert 'error: YOLOXHead post-processes its predictions its own way' in \
        error.splitlines()[-1]
    with pytest.raises(ExportError, match='opset 13: end-to-end graphs'):
        export_end_to_end(torch.nn.Identity(), out, (64, 64), opset=13)
