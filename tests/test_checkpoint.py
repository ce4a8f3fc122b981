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


def test_int8_export_is_half_the_size_and_within_half_a_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build(llnet_s()).eval()
    export_weights(net, tmp_path / "f16.pt")
    export_weights(net, tmp_path / "i8.pt", int8=True)
    assert (tmp_path / "i8.pt").stat().st_size < 0.6 * (tmp_path / "f16.pt").stat().st_size
    back = load_model(tmp_path / "i8.pt")
    want, got = net.state_dict(), back.state_dict()
    assert want.keys() == got.keys()
    w = want["high.s32.0.conv1.0.weight"]  # a quantised conv: error at most half a step of its channel's scale
    step = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    assert ((got["high.s32.0.conv1.0.weight"] - w).abs() <= step / 2 + 1e-7).all()
    assert not torch.equal(got["high.s32.0.conv1.0.weight"], w)  # it really was quantised
    torch.testing.assert_close(got["low.stem.0.1.weight"], want["low.stem.0.1.weight"], rtol=1e-3, atol=1e-3)  # BN: float16


def test_export_command(tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lowlatseg.cli import main

    assert main(["export", str(tiny_weights), "--out", str(tmp_path / "e.pt")]) == 0
    assert load_model(tmp_path / "e.pt").config == load_model(tiny_weights).config
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    assert main(["export", str(tiny_weights), "--out", str(tmp_path / "no" / "such" / "e.pt")]) == 2
    assert "folder" in capsys.readouterr().err


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


def test_bundled_companion_is_found_by_fingerprint(tiny_weights: Path, tiny_prop: Path, tmp_path: Path) -> None:
    """With several bundled companion files, each network finds the one trained for it."""
    import shutil

    from lowlatseg.checkpoint import bundled_companion
    from lowlatseg.propagation.weights import PROP_FORMAT

    shutil.copy(tiny_prop, tmp_path / "propagation_tiny_camvid.pt")
    default = tmp_path / "propagation_default_camvid.pt"  # the default model's file: absent here
    model = load_model(tiny_weights)
    assert bundled_companion(default, model, fmt=PROP_FORMAT) == tmp_path / "propagation_tiny_camvid.pt"
    other = load_model(tiny_weights)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)  # another network: no file matches, the default is named
    assert bundled_companion(default, other, fmt=PROP_FORMAT) == default


def test_the_bundle_stays_under_15_mb_and_each_network_has_its_companions() -> None:
    """What ships in ``lowlatseg/weights``: every segmentation network loads, finds a propagation and
    a scheduler file trained for it (by fingerprint), the default first; all files under 15 MB."""
    from lowlatseg.checkpoint import DEFAULT_WEIGHTS, bundled_companion, bundled_models, fingerprint
    from lowlatseg.propagation.weights import DEFAULT_PROPAGATION, PROP_FORMAT, load_methods
    from lowlatseg.scheduling.weights import DEFAULT_SCHEDULER, SCHED_FORMAT, load_scheduler

    folder = DEFAULT_WEIGHTS.parent
    assert sum(p.stat().st_size for p in folder.glob("*.pt")) < 15e6
    models = bundled_models()
    assert models[0] == DEFAULT_WEIGHTS and len(models) >= 2
    companions: set[Path] = set()
    for path in models:
        model = load_model(path)
        load_methods(None, model)  # each loads strictly through the loaders the runtime uses
        load_scheduler(None, model)
        fp = fingerprint(model)
        for default, fmt in ((DEFAULT_PROPAGATION, PROP_FORMAT), (DEFAULT_SCHEDULER, SCHED_FORMAT)):
            found = bundled_companion(default, model, fmt=fmt, fp=fp)
            assert torch.load(found, map_location="cpu", weights_only=True)["base_fingerprint"] == fp, (path, fmt)
            companions.add(found)
    assert companions | set(models) == set(folder.glob("*.pt"))  # no file ships without its network
