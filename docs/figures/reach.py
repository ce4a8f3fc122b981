"""How far content moves between a keyframe and the frames propagated from it, against how far
the adaptive kernel reaches: ``python docs/figures/reach.py`` writes
``docs/results/motion_reach.json`` and ``docs/results/motion_reach.png``.

For each clip, frames resized to height 360 (the network input of ``eval agreement --size 360``),
DIS optical flow (OpenCV, preset ``medium``) from frame t to frame t - g for the gaps g = 1..4 of
keyframe interval 5 (30 fps clips; the gap is scaled by fps / 30 for other rates), over the first
150 frames. The flow magnitude of every pixel is compared with the reach of the kernels:

* adaptive (K = 7, dilation 2, stride-8 grid): 3 taps x 2 cells x 8 px = 48 px from the centre;
* flow-guided (after the DIS warp, K = 5, dilation 1): 16 px of residual around the flow.

The flow is an estimate (DIS is wrong in places, mostly where the motion is large), so the
shares beyond reach are indicative, not exact.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
CLIPS = {"city": "city_slow_626x360.mp4", "highway": "autobahn_960x540.mp4", "static": "static_street_640x352.mp4"}
FRAMES, HEIGHT, INTERVAL = 150, 360, 5
REACH_ADAPTIVE_PX = 7 // 2 * 2 * 8
REACH_GUIDED_PX = 5 // 2 * 1 * 8


def _frames(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = []
    while len(out) < FRAMES:
        ok, f = cap.read()
        if not ok:
            break
        h, w = f.shape[:2]
        out.append(cv2.cvtColor(cv2.resize(f, (round(w * HEIGHT / h), HEIGHT), interpolation=cv2.INTER_AREA),
                                cv2.COLOR_BGR2GRAY))
    cap.release()
    return out, fps


def clip_motion(path: Path) -> dict[str, object]:
    """Per gap: flow magnitude percentiles (px) and the shares of pixels beyond each reach."""
    grey, fps = _frames(path)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    scale = max(fps, 1.0) / 30.0
    rows, pooled = [], []
    for g in range(1, INTERVAL):
        step = max(1, round(g * scale))
        mags = []
        for t in range(step, len(grey), 3):  # every third frame: enough pixels, a few seconds of DIS
            flow = dis.calc(grey[t], grey[t - step], None)
            mags.append(np.hypot(flow[..., 0], flow[..., 1]).ravel())
        m = np.concatenate(mags)
        pooled.append(m)
        rows.append(_stats(m) | {"gap": g, "gap_frames": step})
    return {"fps": round(fps, 2), "frames": len(grey), "gaps": rows, "all_gaps": _stats(np.concatenate(pooled))}


def _stats(m: np.ndarray) -> dict[str, float]:
    return {"p50_px": round(float(np.percentile(m, 50)), 1), "p90_px": round(float(np.percentile(m, 90)), 1),
            "p99_px": round(float(np.percentile(m, 99)), 1),
            "beyond_adaptive_reach": round(float(np.mean(m > REACH_ADAPTIVE_PX)), 4),
            "beyond_guided_residual_reach": round(float(np.mean(m > REACH_GUIDED_PX)), 4)}


def main() -> int:
    if not VIDEO.is_dir():
        print(f"no videos at {VIDEO}; this script needs the project's data folder", file=sys.stderr)
        return 2
    result = {"height": HEIGHT, "interval": INTERVAL, "frames": FRAMES, "flow": "DIS medium",
              "reach_adaptive_px": REACH_ADAPTIVE_PX, "reach_guided_residual_px": REACH_GUIDED_PX,
              "clips": {name: {"video": clip, **clip_motion(VIDEO / clip)} for name, clip in CLIPS.items()}}
    out = ROOT / "docs" / "results" / "motion_reach.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, out.with_suffix(".png"))
    for name, c in result["clips"].items():
        print(name, [(r["gap"], r["p90_px"], r["beyond_adaptive_reach"]) for r in c["gaps"]])
    return 0


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, c in result["clips"].items():
        gaps = [r["gap"] for r in c["gaps"]]
        line, = ax.plot(gaps, [r["p90_px"] for r in c["gaps"]], marker="o", label=f"{name}: 90th percentile")
        ax.plot(gaps, [r["p99_px"] for r in c["gaps"]], marker="^", linestyle="--", color=line.get_color(),
                label=f"{name}: 99th percentile")
    ax.axhline(result["reach_adaptive_px"], color="k", linewidth=1, label="adaptive kernel reach (48 px)")
    ax.axhline(result["reach_guided_residual_px"], color="gray", linestyle=":", linewidth=1,
               label="flow-guided residual reach (16 px)")
    ax.set_xlabel("frames since the keyframe (30 fps; keyframe interval 5)")
    ax.set_ylabel("motion (px at height 360)")
    ax.set_xticks(range(1, result["interval"]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
