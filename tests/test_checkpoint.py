"""Checkpoints carry their config and load strictly; bad files give one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lowlatseg.checkpoint import export_weights, load_model
from lowlatseg.errors import UserError
from lowlatseg.nn.builders import build, llnet_s, llnet_tiny


def test_roundtrip_preserves_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build(llnet_tiny()).eval()
    export_weights(net, tmp_path / "w.pt")
    back = load_model(tmp_path / "w.pt")
    assert back.config == net.config
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        # weights are stored in float16: outputs agree to half precision
        torch.testing.assert_close(back(x), net(x), rtol=2e-2, atol=2e-2)


def test_wrong_architecture_is_refused(tmp_path: Path, tiny_weights: Path) -> None:
    with pytest.raises(UserError, match="not the expected llnet-s"):
        load_model(tiny_weights, expect=llnet_s())


def test_state_dict_of_other_shape_is_refused(tmp_path: Path) -> None:
    obj = torch.load(_export(tmp_path), weights_only=True)
    obj["net_config"]["low_ch"] = 24  # config says one thing, tensors another
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="does not match architecture"):
        load_model(tmp_path / "bad.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_file_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "c.pt").write_bytes(content)
    with pytest.raises(UserError, match="cannot be read|not a lowlatseg checkpoint"):
        load_model(tmp_path / "c.pt")


def test_foreign_torch_file_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "f.pt")
    with pytest.raises(UserError, match="not a lowlatseg checkpoint"):
        load_model(tmp_path / "f.pt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nope.pt")


def _export(tmp_path: Path) -> Path:
    export_weights(build(llnet_tiny()).eval(), tmp_path / "w.pt")
    return tmp_path / "w.pt"
