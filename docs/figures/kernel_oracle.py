"""Why the adaptive method loses to flow warping: the best kernels it could predict.

``python docs/figures/kernel_oracle.py`` writes ``docs/results/kernel_oracle.json``.

The adaptive method moves a keyframe's ``f_high`` by a softmax-weighted sum of K x K taps spaced
``dilation`` cells apart on the stride-8 grid. If it knew the motion exactly, the best it could
do is put the bilinear weights of the displacement on the four taps around it. This script
builds exactly those kernels from DIS flow
(:func:`lowlatseg.propagation.flow_kernels.flow_kernels`) (the same flow ``flow+fuse`` warps with) and scores,
with the same keyframes (every 5th frame), the same fusion and the same per-frame reference
(agreement mIoU with the per-frame network, network input at height 360, first 150 frames;
scored on the stride-8 feature grid, the argmax of the head's logits, so the figures are close
to but not those of ``eval agreement``, which scores upsampled labels):

* ``flow+fuse``: bilinear sampling at the displacement (taps one cell apart, unlimited reach);
* ``flow-kernel K=7 d=2``: the displacement's bilinear weights on the adaptive method's own tap
  grid (taps 2 cells = 16 px apart, reach 48 px), clipped to its reach;
* ``flow-kernel K=13 d=1``: the same reach with taps one cell apart;
* ``flow-kernel K=7 d=1``: the same 49 taps one cell apart (reach 24 px);
* ``adaptive``: the learned kernels of the bundled propagation file.

If ``flow-kernel K=7 d=2`` scores near ``flow+fuse``, the tap grid is not what holds the
adaptive method back and the kernel predictor is; if it scores well below, the dilated grid is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video"
CLIPS = {"city": "city_slow_626x360.mp4", "highway": "autobahn_960x540.mp4", "static": "static_street_640x352.mp4"}
FRAMES, INTERVAL = 150, 5


def score_clip(path: Path) -> dict[str, float]:
    from lowlatseg import load_model
    from lowlatseg.metrics import Confusion
    from lowlatseg.io.video import VideoReader
    from lowlatseg.nn.inference import for_inference
    from lowlatseg.propagation.flow import DISFlow, warp
    from lowlatseg.propagation.flow_kernels import flow_kernels
    from lowlatseg.propagation.methods import Current, KeyState, grid_flow
    from lowlatseg.propagation.svconv import sv_conv
    from lowlatseg.propagation.weights import load_propagation
    from lowlatseg.runtime import network_size, prepare

    model = for_inference(load_model())
    _, adaptive, _ = load_propagation(None, load_model())
    adaptive = for_inference(adaptive)
    dis = DISFlow("fast")
    n = model.config.num_classes
    conf = {name: Confusion(n) for name in ("flow+fuse", "flow-kernel K=7 d=2", "flow-kernel K=13 d=1", "flow-kernel K=7 d=1",
                                            "adaptive")}
    key: KeyState | None = None
    with VideoReader(str(path)) as reader, torch.inference_mode():
        hw = network_size((reader.info.height, reader.info.width), 360)
        for t, frame in enumerate(reader):
            if t >= FRAMES:
                break
            x = prepare(frame, hw)
            f_low = model.low(x)
            ref = model.head(model.high(f_low), f_low).argmax(1)
            if t % INTERVAL == 0:
                key = KeyState(index=t, image=x, f_low=f_low, f_high=model.high(f_low))
                for c in conf.values():
                    c.update(ref, ref)
                continue
            assert key is not None
            cur = Current(index=t, image=x, f_low=f_low)
            grid = (f_low.shape[-2], f_low.shape[-1])
            flow = grid_flow(dis, key, cur, grid)
            moved = {
                "flow+fuse": warp(key.f_high, flow),
                "flow-kernel K=7 d=2": sv_conv(key.f_high, flow_kernels(flow, 7, 2), kernel_size=7, dilation=2),
                "flow-kernel K=13 d=1": sv_conv(key.f_high, flow_kernels(flow, 13, 1), kernel_size=13, dilation=1),
                "flow-kernel K=7 d=1": sv_conv(key.f_high, flow_kernels(flow, 7, 1), kernel_size=7, dilation=1),
                "adaptive": adaptive.propagate(key, cur),
            }
            for name, f_high in moved.items():
                conf[name].update(model.head(f_high, f_low).argmax(1), ref)
    return {name: round(c.miou(), 2) for name, c in conf.items()}


def main() -> int:
    if not VIDEO.is_dir():
        print(f"no videos at {VIDEO}; this script needs the project's data folder", file=sys.stderr)
        return 2
    torch.set_num_threads(2)  # accuracy only: the thread count does not change the labels
    result = {"interval": INTERVAL, "frames": FRAMES, "height": 360, "score": "agreement mIoU with the per-frame network",
              "clips": {name: {"video": clip, **score_clip(VIDEO / clip)} for name, clip in CLIPS.items()}}
    out = ROOT / "docs" / "results" / "kernel_oracle.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["clips"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
