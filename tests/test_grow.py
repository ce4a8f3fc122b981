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
