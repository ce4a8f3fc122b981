"""Dataset readers and augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lowlatseg.classes import IGNORE_INDEX
from lowlatseg.data.camvid import camvid, read_split
from lowlatseg.data.cityscapes import cityscapes
from lowlatseg.data.transforms import AugmentConfig, augment
from lowlatseg.errors import UserError

from conftest import CAMVID, CITYSCAPES, needs_camvid, needs_cityscapes


@needs_camvid
def test_camvid_val_reads_in_time_order() -> None:
    ds = camvid(CAMVID, "val", cache=False)
    assert len(ds) == 51
    names = [s.name for s in ds.samples]
    assert names == sorted(names)
    image, label = ds[0]
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert label.shape == (360, 480)
    assert set(np.unique(label)) <= set(range(11)) | {IGNORE_INDEX}
    assert (label == IGNORE_INDEX).any()  # CamVid's void (11) maps to the ignore label


def test_void_maps_to_ignore(tiny_camvid: Path) -> None:
    ds = camvid(tiny_camvid, "train")
    raw = ds.samples[0].label
    import cv2

    raw_arr = cv2.imread(str(raw), cv2.IMREAD_UNCHANGED)
    _, lab = ds[0]
    assert np.array_equal(lab == IGNORE_INDEX, raw_arr == 11)


def test_split_naming_missing_file_is_a_clear_error(tiny_camvid: Path) -> None:
    (tiny_camvid / "bad.txt").write_text("img/S_000.png lab/S_000.png\nimg/nope.png lab/nope.png\n")
    with pytest.raises(UserError, match=r"bad.txt:2 names .*nope.png, which does not exist"):
        read_split(tiny_camvid, "bad")


def test_missing_split_lists_available(tiny_camvid: Path) -> None:
    with pytest.raises(UserError, match="available splits.*train"):
        read_split(tiny_camvid, "test")


def test_augment_keeps_image_and_label_aligned() -> None:
    """Encode each pixel's position in the image and its label; after augmentation they still agree."""
    h, w = 60, 80
    yy, xx = np.mgrid[0:h, 0:w]
    label = ((yy // 10) * 8 + (xx // 10)).astype(np.uint8)  # 6 x 8 blocks
    image = np.stack([label * 4, label * 4, label * 4], -1).astype(np.uint8)
    cfg = AugmentConfig(crop=(48, 64), scale=(0.8, 1.5), hflip=True, color=0.0)
    for seed in range(10):
        img, lab = augment(image, label, cfg, np.random.default_rng(seed))
        assert img.shape == (48, 64, 3) and lab.shape == (48, 64)
        valid = lab != IGNORE_INDEX
        # away from block borders, bilinear image values equal the nearest label's code
        interior = valid & (np.abs(img[..., 0].astype(int) - lab.astype(int) * 4) == 0)
        assert interior.sum() > 0.6 * valid.sum()


def test_augment_pads_with_ignore() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    label = np.zeros((20, 20), np.uint8)
    cfg = AugmentConfig(crop=(40, 40), scale=(1.0, 1.0), hflip=False, color=0.0)
    _, lab = augment(image, label, cfg, np.random.default_rng(0))
    assert (lab == IGNORE_INDEX).sum() == 40 * 40 - 20 * 20


@needs_cityscapes
def test_cityscapes_reader_maps_label_ids_to_train_ids() -> None:
    import cv2

    ds = cityscapes(CITYSCAPES, "val", cache=False)
    assert len(ds) == 1
    image, label = ds[0]
    assert image.shape[:2] == label.shape == (128, 256)
    official = cv2.imread(
        str(next(CITYSCAPES.glob("gtFine/val/*/*_gtFine_labelTrainIds.png"))), cv2.IMREAD_UNCHANGED
    )
    # The fixture's three label files were downscaled separately (nearest), so a few border
    # pixels disagree between labelIds and labelTrainIds; everywhere else they must match.
    assert (label == official).mean() > 0.995
    assert set(np.unique(label)) <= set(range(19)) | {IGNORE_INDEX}
    assert ds.labels.num_classes == 19
