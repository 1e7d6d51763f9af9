"""Tests of helpers.py, whose mistakes would make other tests fail
for the wrong reason (on a GPU only, where these run less often)."""
import torch
from helpers import SMALL, forward_once
from torch import nn


class InputDevice(nn.Module):
    """A model that answers with the device of the image it is given."""

    def __init__(self, device):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, device=device))

    def forward(self, inputs, samples, mode):
        assert mode == 'predict' and len(samples) == 1
        return inputs.device, tuple(inputs.shape)


def test_forward_once_makes_the_image_on_the_models_device():
    # 'meta' stands in for 'cuda': a device other than the CPU.
    device, shape = forward_once(InputDevice('meta'), 'mmdet')
    assert device.type == 'meta'
    assert shape == (1, 3, *SMALL)
    assert forward_once(InputDevice('cpu'), 'mmseg')[0].type == 'cpu'
