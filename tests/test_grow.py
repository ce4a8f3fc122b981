"""Growing a trained variant into a deeper one (``train base --init``)."""

from __future__ import annotations

import pytest
import torch

from lowlatseg.errors import UserError
from lowlatseg.nn.builders import build, variant_config
from lowlatseg.nn.grow import grow_from

from conftest import randomised_net


def test_grown_network_computes_what_the_source_computed() -> None:
    small = randomised_net("llnet-s", 0)
    big = randomised_net("llnet-m", 1)
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        before = big(x)
    new = grow_from(big, small)
    assert len(new) == big.config.mid_blocks - small.config.mid_blocks
    with torch.inference_mode():
        after, want = big(x), small(x)
    torch.testing.assert_close(after, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, want, atol=1e-3)  # the check above is not vacuous
    # the new blocks can still learn: their convs are random, only the last BN scale is zero
    block = dict(big.named_modules())[new[0]]
    with torch.no_grad():
        assert block.conv1[0].weight.abs().sum() > 0 and float(block.conv2[1].weight.abs().sum()) == 0.0


def test_grow_refuses_a_source_of_other_widths() -> None:
    with pytest.raises(UserError, match="cannot grow llnet-m from llnet-tiny"):
        grow_from(build(variant_config("llnet-m")), build(variant_config("llnet-tiny")))


def test_grow_refuses_other_classes_and_other_dilations() -> None:
    from dataclasses import replace

    with pytest.raises(UserError, match="19 classes"):
        grow_from(build(variant_config("llnet-m")), build(variant_config("llnet-s", num_classes=19)))
    shifted = replace(variant_config("llnet-m"), mid_dilations=(2,) + variant_config("llnet-m").mid_dilations[1:])
    with pytest.raises(UserError, match="dilations"):
        grow_from(build(shifted), build(variant_config("llnet-s")))


def test_mid_dilations_must_match_the_block_count() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="mid_dilations has 1 entries for 2 mid blocks"):
        build(replace(variant_config("llnet-s"), mid_dilations=(2,)))


def test_body_copy_keeps_low_and_high_and_freezes_them() -> None:
    """``--body-from``: a lean-head llnet-el on llnet-e's body computes llnet-e's f_low and f_high
    exactly; only the head gets gradients, and the frozen parts' BatchNorm statistics stay put."""
    from lowlatseg.nn.grow import copy_body, freeze_body

    src = randomised_net("llnet-e", 0).eval()
    dst = build(variant_config("llnet-el"))
    copy_body(dst, src)
    frozen = freeze_body(dst)
    dst.eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        f_low = src.low(x)
        torch.testing.assert_close(dst.low(x), f_low, rtol=0, atol=0)
        torch.testing.assert_close(dst.high(f_low), src.high(f_low), rtol=0, atol=0)
    assert {id(m) for m in frozen} == {id(dst.low), id(dst.high)}
    trainable = {n.split(".")[0] for n, p in dst.named_parameters() if p.requires_grad}
    assert trainable == {"head"}
    dst.train()
    for m in frozen:
        m.eval()
    stats = [b.running_mean.clone() for b in dst.high.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    loss = dst(torch.rand(2, 3, 64, 96)).mean()
    loss.backward()
    after = [b.running_mean for b in dst.high.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert stats and all(torch.equal(a, b) for a, b in zip(stats, after))
    assert all(p.grad is None for p in dst.low.parameters()) and dst.head.adapt[0].weight.grad is not None


def test_body_copy_refuses_another_body() -> None:
    from lowlatseg.nn.grow import copy_body

    with pytest.raises(UserError, match="cannot take the body of llnet-el from llnet-m: .*low_ch"):
        copy_body(build(variant_config("llnet-el")), build(variant_config("llnet-m")))


def test_lean_head_adapts_f_low_to_fewer_channels() -> None:
    net = build(variant_config("llnet-el"))
    assert net.head.adapt[0].out_channels == 64 and net.head.adapt[0].in_channels == net.config.low_ch
    assert build(variant_config("llnet-e")).head.adapt[0].out_channels == net.config.low_ch  # 0: as before
    assert net.learned_low_ch == 64 and build(variant_config("llnet-m")).learned_low_ch == 64
