"""Defaults of the evaluation commands that stand for a measurement (kept free of torch imports,
so the CLI can show them in ``--help`` without loading PyTorch)."""

# Frames from choosing a keyframe to the first frame its features answer, used to score the
# low-latency mode deterministically (``eval video``, ``eval tradeoff``). Measured live with
# ``run_live`` on the 2-core CPU, CamVid val clip at its 15 Hz: with a keyframe's high in
# slices between frames (session 6), 29 of 30 keyframes were ready 1 frame late, one 2 frames
# (with the earlier parallel worker on one core, every one of 39 was 2 frames late). On a 25
# fps stream it is 2 frames, fed as fast as possible at most 6 (``MAX_DELAY_FRAMES``);
# ``lowlatseg bench`` reports it per stream (``keyframe_delay_frames``).
DEFAULT_DELAY_FRAMES = 1

# Where live low-latency runs a keyframe's high (runtime/executors.py): between frames with
# every core, on the stream's compute thread ("sliced", the default), or on a worker thread with
# one core at the same time as the frames ("parallel").
WORKERS = ("sliced", "parallel")

# Sliced worker: when frames come faster than they are answered, a keyframe's features are ready
# at most this many frames after it. Fed as fast as possible, the parallel worker's came 6
# frames late on 2 cores; the default keeps them no staler, since staleness costs accuracy
# (eval video's low-latency row on the 15 Hz clip: 63.72 at 1 frame late, 62.81 at 2, 59.59 at 6).
MAX_DELAY_FRAMES = 6
