"""Runtime defaults that stand for a measurement (no torch import: ``--help`` shows them at once).

Where each number comes from is in ``docs/runtime.md`` and ``docs/measurements.md``.
"""

# The runtime's modes (runtime/stream.py), in the order tables and choices list them.
MODES = ("per-frame", "fixed", "adaptive", "low-latency")

# The propagation methods a runtime can propagate with (runtime/build.py): the learned ones of a
# propagation file, and "flow" (DIS optical flow alone, the flow+fuse baseline, no weights).
PROPAGATION_METHODS = ("adaptive", "flow-guided", "flow-residual", "flow")

# What a learned deviation predictor learns (scheduling/targets.py; ``train scheduler --target``).
DEVIATION_TARGETS = ("pixels", "class-weighted")

# The base network's training losses (train/losses.py; ``train base --loss``).
BASE_LOSSES = ("ce", "ce+lovasz")

# The learned methods a propagation file holds, by name (train/propagation.py; ``train propagation --only``).
TRAINED_METHODS = ("adaptive", "uniform", "flow-guided", "flow-residual")

# Frames from choosing a keyframe to the first frame its features answer, used to score the
# low-latency mode deterministically (``eval video``; ``eval tradeoff`` uses the delay its live run
# measures, and this one only as its first assumption): the delay measured live on the 2-core CPU
# at the 15 Hz CamVid clip's rate, the less flattering of the two common values.
DEFAULT_DELAY_FRAMES = 2

# Where live low-latency runs a keyframe's high (runtime/sliced.py, runtime/executors.py): between frames with
# every core, on the stream's compute thread ("sliced", the default), or on a worker thread with
# one core at the same time as the frames ("parallel").
WORKERS = ("sliced", "parallel")

# Sliced worker: when frames leave a little time between them, a keyframe's features are ready
# at most this many frames after it (frames that come back to back split the cores instead);
# staleness costs accuracy, so the bound keeps them no staler than the parallel worker's.
MAX_DELAY_FRAMES = 6

# The propagation the runtime uses by default: "adaptive" (the paper's), "flow-guided" (DIS flow,
# then learned kernels), "flow-residual" (DIS flow, then a learned correction) or "flow" (DIS flow
# alone, then fused with the frame's own low-level features). "flow" since 2026-12-07: at the same
# cost of a propagated frame as the paper's kernels (0.34-0.37 of a per-frame one, same runs) it
# agreed 0.8-1.7 points better with the per-frame network on three held-out real clips and scored
# 1.2 more on the labelled CamVid clip (docs/figures/propagated_cost.py, docs/measurements.md).
DEFAULT_PROPAGATION_METHOD = "flow"

# The DIS preset of the runtime's "flow" method: "ultrafast" was as accurate as "fast" (every
# clip within 0.25) for 2-3 ms less a frame at 360x480 (same runs as above). The baseline rows of
# `eval video` / `eval agreement` keep a propagation file's own preset ("fast").
RUNTIME_FLOW_PRESET = "ultrafast"
