"""for_inference: the same function, BatchNorm folded, channels-last, the original untouched."""

from __future__ import annotations

import torch
from torch import nn

from lowlatseg.nn.inference import for_inference
from lowlatseg.propagation.methods import FlowWarp, PropagationConfig, Uniform

from conftest import randomised_net


def test_same_function_without_batchnorm() -> None:
    net = randomised_net("llnet-tiny", 0)
    fast = for_inference(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original keeps its layers
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        ref = net(x)
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(fast(inp), ref, rtol=1e-4, atol=1e-4)


def test_channels_last_and_idempotent() -> None:
    fast = for_inference(randomised_net("llnet-tiny", 0))
    conv_weights = [m.weight for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert conv_weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(for_inference(fast)(x), fast(x), rtol=0, atol=0)


def test_parameterless_module_is_returned_itself() -> None:
    flow = FlowWarp("fast")  # holds an OpenCV object that cannot be copied
    assert for_inference(flow) is flow
    uniform = Uniform(PropagationConfig())
    assert for_inference(uniform) is not uniform
