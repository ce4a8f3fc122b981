"""What the commands share: argument types, default folders, shared flag groups, threads, SIGTERM.

Nothing here imports torch, so ``lowlatseg --help`` stays instant.
"""

from __future__ import annotations

import argparse
import math
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from lowlatseg.defaults import DEFAULT_PROPAGATION_METHOD, MAX_DELAY_FRAMES, PROPAGATION_METHODS
from lowlatseg.errors import UserError

MAX_DELAY_HELP = (f"low-latency, sliced worker: when frames leave a little time between them, a keyframe's features are "
                  f"ready at most N frames after it (default {MAX_DELAY_FRAMES}; larger: lower latency, staler features); "
                  "frames that come back to back split the cores instead, and the features come when high is done")



def add_spare_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-spare-keyframes`` (dest ``spare_keyframes``): low-latency's spare keyframes off."""
    parser.add_argument("--no-spare-keyframes", dest="spare_keyframes", action="store_false",
                        help="low-latency: keyframes only as the policy chooses them. By default, while the stream leaves "
                             "time for a whole high between frames (a keyframe's features ready by the next frame), "
                             "every frame is a keyframe, propagated from the frame before it")


def add_propagation_method_flag(p: argparse.ArgumentParser) -> None:
    """``--propagation-method`` of the commands that run the runtime on a stream (segment, view, bench)."""
    p.add_argument("--propagation-method", default=DEFAULT_PROPAGATION_METHOD, choices=PROPAGATION_METHODS,
                   help=f"how non-key frames get their features (default {DEFAULT_PROPAGATION_METHOD}): the paper's adaptive "
                        "kernels, DIS optical flow corrected by learned kernels (flow-guided), DIS flow plus a learned "
                        "correction of the warped features (flow-residual), or DIS flow alone (flow)")


DEFAULT_CAMVID = "../shared/data/camvid"
DEFAULT_VIDEOS = "../shared/data/video"


def _number(text: str, cast: type, ok: Any, must: str) -> Any:
    """``cast(text)`` if ``ok`` of it, else an argparse error saying what the value ``must`` be."""
    try:
        v = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
    if cast is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{v} must be {must}")
    return v


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "at least 1")


def nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "0 or more")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "greater than 0")


def nonneg_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "0 or more")


def open_unit(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < 1, "between 0 and 1, both excluded")


Opts = TypeVar("Opts")


def options(cls: type[Opts], a: argparse.Namespace, **given: Any) -> Opts:
    """The options dataclass ``cls`` from the parsed flags: each field takes ``given[name]``, else
    the flag of the same name (lists become tuples), else its default; ``progress`` is
    ``not --quiet``."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.name == "progress" and hasattr(a, "quiet"):
            values[f.name] = not a.quiet
        elif hasattr(a, f.name):
            v = getattr(a, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def json_path(a: argparse.Namespace) -> Path | None:
    """``--json FILE`` as a path (None: not given)."""
    return Path(a.json) if getattr(a, "json", None) else None


def set_threads(n: int) -> None:
    import torch

    if n > 0:
        torch.set_num_threads(n)


def resolve_base(base: str | None) -> str | None:
    """A run folder stands for its final weights (weights.pt, else best.pt)."""
    if base and Path(base).is_dir():
        return str(Path(base) / "weights.pt") if (Path(base) / "weights.pt").is_file() else str(Path(base) / "best.pt")
    return base


def training_videos(a: argparse.Namespace) -> tuple[str, ...]:
    """--video files when given, else every video of --video-dir ('none': no video)."""
    from lowlatseg.data.video_pairs import default_videos

    if a.video:
        if a.video_dir is not None:
            raise UserError("--video and --video-dir both choose the training videos; give one of them")
        return tuple(a.video)
    if a.video_dir in ("", "none"):
        return ()
    return tuple(default_videos(a.video_dir or DEFAULT_VIDEOS))


def pair_overrides(a: argparse.Namespace, gap_field: str) -> dict[str, Any]:
    """The pair flags the user gave (the trainer's config keeps its defaults for the others)."""
    out: dict[str, Any] = {}
    if a.video_fraction is not None:
        if not 0 <= a.video_fraction <= 1:
            raise UserError(f"--video-fraction {a.video_fraction} must be in [0, 1]: the share of pairs from real video")
        out["video_fraction"] = a.video_fraction
    if a.max_gap is not None:
        out[gap_field] = a.max_gap
    return out


def add_propagation_eval_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by the propagation benchmarks (eval video, eval agreement, eval scheduling)."""
    p.add_argument("--weights", help="base weights (default: bundled)")
    p.add_argument("--propagation", help="propagation weights (default: bundled)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--max-frames", type=nonneg_int, default=0)
    p.add_argument("--threads", type=nonneg_int, default=2)
    p.add_argument("--quiet", action="store_true")


def add_pair_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by the trainers that learn from (keyframe, frame) pairs with the base frozen."""
    p.add_argument("--data", default=DEFAULT_CAMVID, help="labelled stills for synthetic pairs")
    p.add_argument("--split", default="train")
    p.add_argument("--video", action="append", help="unlabelled clip for teacher-labelled pairs (repeatable; "
                   "instead of --video-dir)")
    p.add_argument("--video-dir", default=None, metavar="DIR",
                   help=f"train on every video of this folder, streamed (default {DEFAULT_VIDEOS}; 'none': synthetic pairs only)")
    p.add_argument("--video-fraction", type=float, default=None, metavar="F",
                   help="share of pairs from real video, the rest synthetic from the stills (0 < F <= 1)")
    p.add_argument("--max-gap", type=positive_int, default=None,
                   help="longest keyframe gap of video pairs, in frames at 30 fps (scaled by each clip's rate)")
    p.add_argument("--base", help="base weights file or run folder (default: the bundled model)")
    p.add_argument("--out", required=True, help="run folder")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``, systemd): stopped like Ctrl-C, so every
    output written so far is finished and valid."""
