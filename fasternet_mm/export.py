"""ONNX export of a deployed FasterNet backbone, checked with onnxruntime."""
import numpy as np
import torch


def export_onnx(model, path, shape, opset=17, dynamic=False):
    """Export ``model`` (deployed, eval) to ``path``; return the example
    input and the PyTorch outputs for checking."""
    image = torch.rand(1, 3, *shape)
    names = [f'stage{i}' for i in model.out_indices]
    axes = None
    if dynamic:
        axes = {'image': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: 'h', 3: 'w'} for n in names})
    with torch.no_grad():
        outputs = model(image)
        torch.onnx.export(
            model, (image, ),
            path,
            input_names=['image'],
            output_names=names,
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False)
    return image, outputs


def check_with_onnxruntime(path, image, outputs):
    """Largest relative difference between onnxruntime and PyTorch."""
    import onnxruntime
    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    results = session.run(None, {'image': image.numpy()})
    return max(
        float(np.abs(r - o.numpy()).max() / np.abs(o.numpy()).max())
        for r, o in zip(results, outputs))
