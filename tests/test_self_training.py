"""Self-training: a teacher pseudo-labels video frames (train/pseudo.py), and train base mixes them in."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lowlatseg.checkpoint import load_file, load_model
from lowlatseg.cli import main
from lowlatseg.data.camvid import camvid
from lowlatseg.data.transforms import AugmentConfig, augment, label_tensor, to_tensor
from lowlatseg.errors import ParameterError, UserError
from lowlatseg.train.base import AugmentedPairs, open_extra, train_base
from lowlatseg.train.config import BaseTrainConfig
from lowlatseg.train.pseudo import (
    PseudoLabelConfig, clip_names, confident_labels, frame_indices, frame_step, pseudo_label, teacher_probabilities,
)


def _image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_teacher_probabilities_are_distributions_and_flip_equivariant(tiny_weights: Path) -> None:
    model = load_model(tiny_weights)
    with torch.no_grad():
        model.head.classify.weight.mul_(100)  # confident, so that a wrong flip would show
    im = _image()
    p = teacher_probabilities(model, im, flip=True, scales=(1.0, 0.75))
    assert p.shape == (model.config.num_classes, 48, 64)
    assert torch.allclose(p.sum(0), torch.ones(48, 64), atol=1e-5)
    # averaging a view with its mirror image makes the teacher exactly mirror-equivariant
    mirrored = teacher_probabilities(model, np.ascontiguousarray(im[:, ::-1]), flip=True, scales=(1.0, 0.75))
    assert torch.allclose(mirrored, p.flip(-1), atol=1e-5)
    # without the mirror view it is not (a random network is not symmetric)
    single = teacher_probabilities(model, im, flip=False)
    single_m = teacher_probabilities(model, np.ascontiguousarray(im[:, ::-1]), flip=False)
    assert (single_m - single.flip(-1)).abs().max() > 1e-2


def test_confident_labels_void_below_the_threshold() -> None:
    prob = torch.tensor([[[0.9, 0.5]], [[0.1, 0.5]]])  # 2 classes x 1 x 2
    assert confident_labels(prob.clone(), 0.7, void=2).tolist() == [[0, 2]]
    assert confident_labels(prob.clone(), 0.0, void=2).tolist() == [[0, 0]]


def test_frames_follow_seconds_and_the_cap_spreads_them() -> None:
    assert frame_step(30.0, PseudoLabelConfig(every_s=0.5)) == 15
    assert frame_step(10.0, PseudoLabelConfig(every_s=0.5)) == 5
    idx = frame_indices(30.0, 900, PseudoLabelConfig(every_s=0.5))
    assert idx is not None and idx.tolist() == list(range(0, 900, 15))
    capped = frame_indices(30.0, 900, PseudoLabelConfig(every_s=0.5, max_per_video=20))
    assert capped is not None and len(capped) == 20 and capped[0] == 0 and capped[-1] == 885  # first to last step
    assert set(capped.tolist()) <= set(idx.tolist())
    near = frame_indices(30.0, 61, PseudoLabelConfig(every_s=1 / 30, max_per_video=60))  # 61 candidates, cap 60
    assert near is not None and len(set(near.tolist())) == 60
    assert frame_indices(30.0, 0, PseudoLabelConfig(max_per_video=20)) is None  # length unknown


def test_clip_names_are_clean_and_unique() -> None:
    names = clip_names(["a/my clip_1.mp4", "b/my clip_1.mkv", "c/my-clip-1.mp4", "d/x.mp4"])
    assert names == ["my-clip-1", "my-clip-1-2", "my-clip-1-3", "x"]
    assert all("_" not in n and " " not in n for n in names)


@pytest.fixture
def sharp_teacher(tiny_weights: Path, tmp_path: Path) -> Path:
    """The tiny network with a 10^4 x classifier: confident on some pixels, unsure on others."""
    from lowlatseg.checkpoint import export_weights

    model = load_model(tiny_weights)
    with torch.no_grad():
        model.head.classify.weight.mul_(1e4)
    path = tmp_path / "sharp.pt"
    export_weights(model, path)
    return path


def test_pseudo_label_writes_a_camvid_split(sharp_teacher: Path, small_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "pl"
    cfg = PseudoLabelConfig(teacher=str(sharp_teacher), videos=(str(small_video),), every_s=0.3, height=48,
                            min_confidence=0.6)
    summary = pseudo_label(cfg, out, progress=False)
    # 12 frames at 10 fps, one every 3 frames: frames 0, 3, 6, 9
    lines = (out / "pseudo.txt").read_text().splitlines()
    assert summary["frames"] == 4 == len(lines)
    assert lines[0] == "images/small_000000.png labels/small_000000.png"
    ds = camvid(out, "pseudo")  # readable as a training split; void is 11
    image, label = ds[1]
    assert image.shape == (48, 64, 3) and label.shape == (48, 64)
    raw = cv2.imread(str(out / "labels" / "small_000003.png"), cv2.IMREAD_UNCHANGED)
    assert raw.max() <= 11
    # the labels are the teacher's, voided where it is unsure
    model = load_model(sharp_teacher)
    expect = confident_labels(teacher_probabilities(model, image), 0.6, void=11)
    assert (raw == expect).mean() > 0.99  # (PNG round trip of the frame is exact; the decoder is the same)
    meta = json.loads((out / "pseudo.json").read_text())
    assert meta["num_classes"] == 11 and meta["videos"][0]["step"] == 3 and meta["videos"][0]["frames"] == 4
    assert 0 < meta["void_share"] < 1  # the threshold cut some pixels and kept others: the comparison above means something
    assert meta["void_share"] == pytest.approx(float(np.mean([(cv2.imread(str(out / p.split()[1]), 0) == 11).mean()
                                                                for p in lines])), abs=1e-3)
    # a second run into the same folder is refused: nothing is overwritten
    with pytest.raises(UserError, match="not an empty folder"):
        pseudo_label(cfg, out, progress=False)


def test_an_unreadable_video_is_named_before_any_work(tiny_weights: Path, small_video: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(UserError, match="bad.mp4 in the training list cannot be read"):
        pseudo_label(PseudoLabelConfig(teacher=str(tiny_weights), videos=(str(small_video), str(bad))), tmp_path / "pl",
                     progress=False)
    assert not (tmp_path / "pl").exists()


def _cfg(data: Path, **kw: object) -> BaseTrainConfig:
    base = dict(arch="llnet-tiny", data=str(data), epochs=2, batch_size=2, warmup_epochs=1,
                augment=AugmentConfig(crop=(32, 48), scale=(0.8, 1.2)))
    base.update(kw)
    return BaseTrainConfig(**base)  # type: ignore[arg-type]


def _pseudo(tiny_weights: Path, small_video: Path, out: Path) -> Path:
    pseudo_label(PseudoLabelConfig(teacher=str(tiny_weights), videos=(str(small_video),), every_s=0.1, height=48,
                                   min_confidence=0.0), out, progress=False)
    return out


def test_extra_frames_are_drawn_anew_each_epoch(tiny_camvid: Path, tiny_weights: Path, small_video: Path, tmp_path: Path) -> None:
    extra_dir = _pseudo(tiny_weights, small_video, tmp_path / "pl")  # 12 frames
    cfg = _cfg(tiny_camvid, extra_data=str(extra_dir), extra_per_epoch=5)
    base = camvid(tiny_camvid, "train")
    pairs = AugmentedPairs(base, cfg, open_extra(cfg, base.labels), cfg.extra_per_epoch)
    assert len(pairs) == 4 + 5
    first = pairs.extra_indices().copy()
    assert len(set(first.tolist())) == 5  # without replacement
    pairs.epoch = 1
    assert not np.array_equal(pairs.extra_indices(), first)
    pairs.epoch = 0
    assert np.array_equal(pairs.extra_indices(), first)  # a function of (seed, epoch): resume-exact
    x, y = pairs[4]  # the first drawn extra frame, augmented with item 4's randomness
    extra = open_extra(cfg, base.labels)
    assert extra is not None
    ex, ey = augment(*extra[int(first[0])], cfg.augment, np.random.default_rng([cfg.seed, 0, 4]))
    assert torch.equal(x, to_tensor(ex)) and torch.equal(y, label_tensor(ey))
    all_of_them = AugmentedPairs(base, cfg, open_extra(cfg, base.labels), 0)
    assert len(all_of_them) == 4 + 12


def test_train_base_with_extra_data_runs_and_records_it(tiny_camvid: Path, tiny_weights: Path, small_video: Path,
                                                        tmp_path: Path) -> None:
    extra_dir = _pseudo(tiny_weights, small_video, tmp_path / "pl")
    out = tmp_path / "run"
    train_base(_cfg(tiny_camvid, epochs=1, extra_data=str(extra_dir), extra_per_epoch=2), out, progress=False)
    assert json.loads((out / "config.json").read_text())["extra_data"] == str(extra_dir)
    # 4 labelled + 2 extra frames at batch 2: 3 steps (without the extra frames it would be 2)
    assert load_file(out / "last.pt")["scheduler"]["last_epoch"] == 3
    # resuming with another frame list at the same path is refused
    lines = (extra_dir / "pseudo.txt").read_text().splitlines()
    (extra_dir / "pseudo.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(UserError, match="not those this run started with"):
        train_base(_cfg(tiny_camvid, epochs=2, extra_data=str(extra_dir), extra_per_epoch=2), out, progress=False)


def test_extra_data_with_other_classes_is_refused(tiny_camvid: Path, tiny_weights: Path, small_video: Path, tmp_path: Path) -> None:
    extra_dir = _pseudo(tiny_weights, small_video, tmp_path / "pl")
    meta = json.loads((extra_dir / "pseudo.json").read_text())
    (extra_dir / "pseudo.json").write_text(json.dumps(meta | {"num_classes": 19}))
    with pytest.raises(ParameterError, match="19 classes"):
        train_base(_cfg(tiny_camvid, extra_data=str(extra_dir)), tmp_path / "run", progress=False)
    with pytest.raises(ParameterError, match="add (--)?extra.data"):
        train_base(_cfg(tiny_camvid, extra_per_epoch=3), tmp_path / "run2", progress=False)
    with pytest.raises(ParameterError, match="is not a folder"):
        train_base(_cfg(tiny_camvid, extra_data=str(tmp_path / "missing")), tmp_path / "run3", progress=False)


def test_cli_pseudo_labels_and_its_refusals(tiny_weights: Path, small_video: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pl"
    assert main(["train", "pseudo-labels", "--teacher", str(tiny_weights), "--video", str(small_video), "--every", "0.5",
                 "--height", "48", "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 3
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"x")
    assert main(["train", "pseudo-labels", "--teacher", str(tiny_weights), "--video", str(bad), "--out",
                 str(tmp_path / "pl2"), "--quiet"]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    assert main(["train", "pseudo-labels", "--teacher", str(tiny_weights), "--video", str(small_video),
                 "--min-confidence", "1.5", "--out", str(tmp_path / "pl3"), "--quiet"]) == 2
    assert "--min-confidence" in capsys.readouterr().err
