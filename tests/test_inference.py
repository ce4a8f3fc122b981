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


def test_head_fuses_in_one_layout_whatever_the_propagated_features_come_in() -> None:
    """grid_sample (flow warping) answers NCHW; the inference copy's head brings such features to
    its channels-last f_low before fusing (mixed layouts made that fusion twice as slow), and
    computes the same logits as with channels-last features."""
    fast = for_inference(randomised_net("llnet-tiny", 0))
    x = torch.rand(1, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    seen: list[torch.Tensor] = []
    fast.head.fuse.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
    with torch.inference_mode():
        f_low = fast.low(x)
        f_high = fast.high(f_low)
        assert f_low.is_contiguous(memory_format=torch.channels_last)
        nchw = f_high.contiguous()
        assert not nchw.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fast.head(nchw, f_low), fast.head(f_high, f_low), rtol=1e-5, atol=1e-5)
    assert len(seen) == 2 and all(t.is_contiguous(memory_format=torch.channels_last) for t in seen)
