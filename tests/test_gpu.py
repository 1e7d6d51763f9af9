"""The CUDA paths: skipped, with the reason, where CUDA is absent. `make
gpu-check` runs them on a GPU machine."""
import pytest
import torch
from helpers import (LOSS_FALL, REPO, SHORT_DET_TRAINING, build, forward_once,
                     last_metrics, loss_fall, randomize_norms,
                     record_stage_formats, run_tool)
from mmengine.config import Config

from fasternet_mm import FasterNet, switch_to_deploy, use_amp
from fasternet_mm.testing import relative_error

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')

DET_DEMO = REPO / 'configs/demo/mask_rcnn_fasternet_t0_shapes.py'
# The tools run with TF32 off in cuDNN and cuBLAS, as ``exact_fp32`` does
# here.
NO_TF32 = dict(NVIDIA_TF32_OVERRIDE='0')


@pytest.fixture
def exact_fp32():
    """TF32 would make fp32 convs differ by ~1e-3."""
    cudnn, matmul = (torch.backends.cudnn.allow_tf32,
                     torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = cudnn
    torch.backends.cuda.matmul.allow_tf32 = matmul


@pytest.mark.parametrize('output_size, sampling_ratio, scale, aligned', [
    (7, 2, 1 / 4, True),
    (14, 2, 1 / 8, True),
    (7, 0, 1 / 4, True),
    (7, 2, 1 / 4, False),
])
def test_gather_roi_align_matches_mmcv_cuda_kernel(output_size,
                                                   sampling_ratio, scale,
                                                   aligned, exact_fp32):
    from mmcv.ops import RoIAlign

    from fasternet_mm.ops import GatherRoIAlign
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 16, 40, 56, generator=generator).cuda()
    corner = torch.rand(128, 2, generator=generator) * 200
    size = torch.rand(128, 2, generator=generator) * 80 + 1
    image = torch.randint(0, 2, (128, 1), generator=generator).float()
    rois = torch.cat([image, corner, corner + size], 1).cuda()
    upstream = torch.randn(
        128, 16, output_size, output_size, generator=generator).cuda()
    mmcv_op = RoIAlign(output_size, scale, sampling_ratio, aligned=aligned)
    ours = GatherRoIAlign(output_size, scale, sampling_ratio, aligned=aligned)
    outputs, grads = [], []
    for run in (mmcv_op, ours.gather, ours):
        x = features.clone().requires_grad_()
        out = run(x, rois)
        (out * upstream).sum().backward()
        outputs.append(out.detach())
        grads.append(x.grad)
    # The gather computes each sample point's coordinates in another order
    # than mmcv's kernel: at coordinates up to 70 (fp32 step 8e-6) the maps
    # differ by up to 1.6e-5 on an H200 (unit-variance features), and a
    # misplaced sample (aligned's half pixel) by about 0.1.
    for out, grad in zip(outputs[1:], grads[1:]):
        torch.testing.assert_close(out, outputs[0], rtol=1e-5, atol=5e-5)
        torch.testing.assert_close(grad, grads[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('compile', [False, True])
def test_deploy_form_on_cuda_equals_training_form(compile, exact_fp32):
    torch.manual_seed(0)
    model = randomize_norms(FasterNet(arch='t0')).cuda().eval()
    x = torch.rand(2, 3, 224, 288, device='cuda')
    with torch.no_grad():
        expected = model(x)
        switch_to_deploy(model, compile=compile)
        formats = record_stage_formats(model)
        deployed = model(x)
    assert model.patch_embed.conv.weight.is_contiguous(
        memory_format=torch.channels_last)
    if not compile:  # compiled graphs do not call module hooks
        assert formats == [True] * 4  # every map, small ones too
    assert relative_error(deployed, expected) <= 1e-4


def test_use_amp_on_cuda_stays_close_to_fp32(exact_fp32):
    cfg = Config.fromfile(REPO / 'configs/mask_rcnn_fasternet_t0.py')
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    model = build(cfg).cuda()
    features = []
    model.neck.register_forward_hook(
        lambda module, args, output: features.append(output))
    torch.manual_seed(0)
    expected = forward_once(model, 'mmdet')[0].pred_instances
    use_amp(model)
    torch.manual_seed(0)
    result = forward_once(model, 'mmdet')[0].pred_instances
    assert result.bboxes.dtype == torch.float32
    assert len(result) == len(expected)
    fp32, bf16 = features
    assert {f.dtype for f in bf16} == {torch.bfloat16}
    assert relative_error(bf16, fp32) < 3e-2


def test_amp_training_then_deployed_test_on_cuda(tmp_path, shapes):
    """The demo config trained with --amp (MMEngine's fp16 AmpOptimWrapper
    on CUDA), then tools/test.py on the same checkpoint in both forms: the
    deploy form must score what the eval form scores."""
    work_dir = tmp_path / 'work'
    options = ['--cfg-options', f'data_root={shapes}/']
    result = run_tool('train.py', DET_DEMO, '--amp', '--work-dir', work_dir,
                      *options, *SHORT_DET_TRAINING, env=NO_TF32)
    assert result.returncode == 0, result.stderr[-3000:]
    # A model that learned nothing scores 0 in both forms, which would
    # compare nothing.
    assert loss_fall(work_dir) <= LOSS_FALL
    assert 'AmpOptimWrapper' in (work_dir / 'mask_rcnn_fasternet_t0_shapes.py'
                                 ).read_text()
    checkpoint = work_dir / 'epoch_20.pth'
    for form, extra in (('eval', []), ('deploy', ['--deploy'])):
        result = run_tool('test.py', DET_DEMO, checkpoint, '--work-dir',
                          tmp_path / form, *extra, *options, env=NO_TF32)
        assert result.returncode == 0, result.stderr[-3000:]
    expected = last_metrics(tmp_path / 'eval')
    deployed = last_metrics(tmp_path / 'deploy')
    # In fp32 the forms differ by rounding only (BN folded into the convs,
    # channels-last): just a box whose score ties with another's can swap
    # rank.
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert abs(deployed[key] - expected[key]) <= 0.005, (
            key, deployed[key], expected[key])
