"""Shared fixtures. Tests run on the CPU with one thread and use tiny models and data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CAMVID = SHARED / "camvid"
VIDEO = SHARED / "video" / "highway_day_960x540.mp4"
CITYSCAPES = SHARED / "cityscapes_sample"

needs_camvid = pytest.mark.skipif(not (CAMVID / "val.txt").is_file(), reason="../shared/data/camvid not present")
needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason="../shared/data/video not present")
needs_cityscapes = pytest.mark.skipif(not CITYSCAPES.is_dir(), reason="../shared/data/cityscapes_sample not present")


def panning_frames(n: int) -> list[np.ndarray]:
    """``n`` 48 x 64 x 3 uint8 frames of one random image sliding 2 px a frame (a camera panning)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    return [np.ascontiguousarray(np.roll(base, i * 2, axis=1)[:, :64]) for i in range(n)]


def randomised_net(name: str, seed: int) -> torch.nn.Module:
    """A variant in eval mode with random weights *and* random BatchNorm statistics, as after
    training (so a test of an identity or a fold is not passed by luck)."""
    from lowlatseg.nn.builders import build, variant_config

    torch.manual_seed(seed)
    net = build(variant_config(name))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(autouse=True)
def _one_thread():
    """CLI calls inside tests set torch's thread count (of the calling thread, the one later tests
    run on); put it back to 1 after each test so that later tests never run oversubscribed."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised llnet-tiny weights file whose labels vary over pixels and frames.

    The classifier's bias is zeroed: with a random bias one class wins every pixel of every
    frame, and a test comparing label maps could not fail."""
    from lowlatseg.checkpoint import export_weights
    from lowlatseg.nn.builders import build, llnet_tiny

    torch.manual_seed(0)
    net = build(llnet_tiny()).eval()
    with torch.no_grad():
        net.head.classify.bias.zero_()
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    export_weights(net, path)
    return path


@pytest.fixture(scope="session")
def tiny_prop(tiny_weights: Path) -> Path:
    """Untrained propagation weights (K=5) for the tiny base network."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.propagation.methods import Adaptive, PropagationConfig, Uniform
    from lowlatseg.propagation.weights import save_propagation

    torch.manual_seed(0)
    base = load_model(tiny_weights)
    cfg = PropagationConfig(kernel_size=5, dilation=1)
    path = tiny_weights.parent / "tiny_prop.pt"
    save_propagation(path, cfg=cfg, base=base, adaptive=Adaptive(cfg, low_ch=base.config.low_ch).eval(), uniform=Uniform(cfg))
    return path


@pytest.fixture(scope="session")
def tiny_sched(tiny_weights: Path) -> Path:
    """Untrained deviation predictor for the tiny base network, default threshold 0.5."""
    from lowlatseg.checkpoint import load_model
    from lowlatseg.scheduling.predictor import DeviationConfig, DeviationPredictor
    from lowlatseg.scheduling.weights import save_scheduler

    torch.manual_seed(0)
    base = load_model(tiny_weights)
    path = tiny_weights.parent / "tiny_sched.pt"
    save_scheduler(path, predictor=DeviationPredictor(DeviationConfig(low_ch=base.config.low_ch)).eval(), base=base, threshold=0.5)
    return path


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 96x128 H.264 video of a moving gradient."""
    from lowlatseg.io.video import VideoWriter

    path = tmp_path_factory.mktemp("video") / "small.mp4"
    yy, xx = np.mgrid[0:96, 0:128]
    with VideoWriter(path, fps=10, width=128, height=96) as w:
        for t in range(12):
            frame = np.stack([(xx * 2 + t * 8) % 256, (yy * 2) % 256, np.full_like(xx, 100)], -1).astype(np.uint8)
            w.write(frame)
    return path


def write_camvid(root: Path, names: list[str]) -> Path:
    """A CamVid-layout folder with one random 48x64 frame and label per name (``train.txt`` lists
    them all, ``val.txt`` the first two)."""
    import cv2

    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    lines = []
    for name in names:
        cv2.imwrite(str(root / "img" / f"{name}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "lab" / f"{name}.png"), rng.integers(0, 12, (48, 64), dtype=np.uint8))
        lines.append(f"img/{name}.png lab/{name}.png")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:2]) + "\n")
    return root


@pytest.fixture
def tiny_camvid(tmp_path: Path) -> Path:
    """A CamVid-layout folder with 4 random 48x64 frames (train and val lists)."""
    return write_camvid(tmp_path, [f"S_{i:03d}" for i in range(4)])
