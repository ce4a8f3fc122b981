"""Overlay of class colours on a frame, with a legend."""

from __future__ import annotations

import cv2
import numpy as np

from lowlatseg.classes import LabelSet


def palette(labels: LabelSet) -> np.ndarray:
    """256 x 3 uint8 lookup: class id -> RGB colour (ignored ids -> black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: labels.num_classes] = np.array(labels.colors, dtype=np.uint8)
    return lut


def colorize(label: np.ndarray, labels: LabelSet) -> np.ndarray:
    """H x W class ids -> H x W x 3 uint8 RGB."""
    return palette(labels)[label]


def blend(frame: np.ndarray, label: np.ndarray, labels: LabelSet, *, alpha: float = 0.5) -> np.ndarray:
    """frame H x W x 3 uint8 RGB, label H x W ids (same H x W) -> overlay with legend."""
    if frame.shape[:2] != label.shape:
        raise ValueError(f"frame is {frame.shape[:2]} but label is {label.shape}")
    out = cv2.addWeighted(frame, 1 - alpha, colorize(label, labels), alpha, 0)
    draw_legend(out, labels)
    return out


def blend_upsampled(frame: np.ndarray, label: np.ndarray, labels: LabelSet, *, alpha: float = 0.5) -> np.ndarray:
    """frame H x W x 3 uint8 RGB, label h x w ids of any size (e.g. the network's) -> overlay at the
    frame's size, with legend: the same pixels as ``blend`` of the label map upsampled (nearest)
    to H x W, for less work. The small map is coloured and the colours upsampled (nearest), then
    blended on uint8 (OpenCV's resize and blending release the GIL; colouring the full-size map
    with a numpy lookup does not, and costs more)."""
    color = colorize(label, labels)
    if label.shape != frame.shape[:2]:
        color = cv2.resize(color, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
    out = cv2.addWeighted(frame, 1 - alpha, color, alpha, 0)
    draw_legend(out, labels)
    return out


def draw_legend(img: np.ndarray, labels: LabelSet) -> None:
    """Draws a compact legend (colour swatch + class name) in the top-left corner, in place."""
    h = img.shape[0]
    row = max(10, min(18, h // (labels.num_classes + 2)))
    scale = row / 30
    width = int(row * 7.5)
    height = row * labels.num_classes + 6
    y0, x0 = 4, 4
    panel = img[y0 : y0 + height, x0 : x0 + width]
    panel[:] = (panel.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    for i, (name, color) in enumerate(zip(labels.classes, labels.colors)):
        y = y0 + 3 + i * row
        cv2.rectangle(img, (x0 + 3, y + 2), (x0 + 3 + row - 4, y + row - 2), tuple(int(c) for c in color), -1)
        cv2.putText(img, name, (x0 + row + 2, y + row - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
