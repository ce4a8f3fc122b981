"""Defaults of the evaluation commands that stand for a measurement (kept free of torch imports,
so the CLI can show them in ``--help`` without loading PyTorch)."""

# Frames from choosing a keyframe to the first frame its features answer, used to score the
# low-latency mode deterministically (``eval video``, ``eval tradeoff``). Measured live with
# ``run_live`` on the 2-core CPU: on the CamVid val clip at its 15 Hz, every one of 39 keyframes
# arrived exactly 2 frames late (high takes ~80 ms on the worker's one core, a frame lasts 67 ms).
# On a 25 fps stream it was 2-3 frames, fed as fast as possible 4-5 (6 since session 5 hands a
# keyframe's high to the worker after answering that frame); ``lowlatseg bench`` reports
# it per stream (``keyframe_delay_frames``).
DEFAULT_DELAY_FRAMES = 2

# Where live low-latency runs a keyframe's high (runtime/executors.py): between frames with
# every core, on the stream's compute thread ("sliced", the default), or on a worker thread with
# one core at the same time as the frames ("parallel").
WORKERS = ("sliced", "parallel")
