"""Our confusion-matrix mIoU against cityscapesscripts' official evaluation, same predictions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lowlatseg.data.cityscapes import cityscapes
from lowlatseg.metrics import Confusion

from conftest import CITYSCAPES, needs_cityscapes


def _train_to_label_id() -> np.ndarray:
    from cityscapesscripts.helpers.labels import labels

    lut = np.zeros(256, dtype=np.uint8)  # 0 = 'unlabeled'
    for lab in labels:
        if 0 <= lab.trainId < 19:
            lut[lab.trainId] = lab.id
    return lut


def _official_miou(pred_files: list[str], gt_files: list[str]) -> float:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.evalInstLevelScore = False
    ev.args.evalPixelAccuracy = False
    ev.args.JSONOutput = False
    ev.args.quiet = True
    res = ev.evaluateImgLists(pred_files, gt_files, ev.args)
    return float(res["averageScoreClasses"]) * 100


@needs_cityscapes
@pytest.mark.parametrize("source", ["perturbed-gt", "network"])
def test_miou_matches_cityscapesscripts(tmp_path: Path, source: str) -> None:
    ds = cityscapes(CITYSCAPES, "val", cache=False)
    rng = np.random.default_rng(1)
    to_id = _train_to_label_id()
    conf = Confusion(19)
    preds, gts = [], []
    for i, sample in enumerate(ds.samples):
        image, label = ds[i]
        if source == "perturbed-gt":
            pred = np.where(label == 255, 0, label).astype(np.uint8)
            for _ in range(40):  # paint random rectangles with random classes
                y, x = rng.integers(0, pred.shape[0] - 16), rng.integers(0, pred.shape[1] - 16)
                pred[y : y + 16, x : x + 16] = rng.integers(0, 19)
        else:
            from lowlatseg.nn.builders import build, llnet_tiny

            torch.manual_seed(0)
            net = build(llnet_tiny(num_classes=19)).eval()
            x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)[None]
            with torch.inference_mode():
                pred = net(x).argmax(1)[0].numpy().astype(np.uint8)
        conf.update(pred, label)
        f = tmp_path / f"{sample.name}_pred.png"
        cv2.imwrite(str(f), to_id[pred])
        preds.append(str(f))
        gts.append(str(sample.label))
    official = _official_miou(preds, gts)
    assert conf.miou() == pytest.approx(official, abs=1e-6)
