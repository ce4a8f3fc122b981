"""Defaults of the evaluation commands that stand for a measurement (kept free of torch imports,
so the CLI can show them in ``--help`` without loading PyTorch)."""

# Frames from choosing a keyframe to the first frame its features answer, used to score the
# low-latency mode deterministically (``eval video``, ``eval tradeoff``). Measured live
# (``eval tradeoff``'s ``live_keyframe_delay_frames``) on the 2-core CPU, CamVid val clip at its
# 15 Hz, with a keyframe's high in slices between frames: on the host of session 6, 144 of 146
# keyframes were ready 1 frame late; on the slower hosts of sessions 8 and 9, where high (45-52
# ms on two cores) barely fits in the 66.7 ms between two frames beside a frame's own work,
# 2 frames was the most common delay: session 8, 78 of 117 (1 frame: 28); session 9's committed
# run, 90 of 177 (1 frame: 82, 3 frames: 5), and at the rates 1/5 and 1/8, those of `eval
# video`'s interval 5 and below, 31 of 43 (1 frame: 11); in another run of session 9, 88 of 115.
# Since session 9 the default is 2: what the machines we run on now deliver at those rates, the
# less flattering of the two. (With the parallel worker of sessions 2-5 every one of 39 was 2
# frames late.) On a 25 fps stream it is 2 frames on session 6's host, 3.3 on average (max 5) on
# session 9's; fed as fast as possible about 6 (up to 9 on session 9's host), where high runs
# beside the frames on one core; ``lowlatseg bench`` reports it per stream
# (``keyframe_delay_frames``).
DEFAULT_DELAY_FRAMES = 2

# Where live low-latency runs a keyframe's high (runtime/executors.py): between frames with
# every core, on the stream's compute thread ("sliced", the default), or on a worker thread with
# one core at the same time as the frames ("parallel").
WORKERS = ("sliced", "parallel")

# Sliced worker: when frames leave a little time between them, a keyframe's features are ready
# at most this many frames after it (frames that come back to back split the cores instead,
# and the features come when high is done: 6-9 frames on 2 cores). Fed as fast as possible, the parallel worker's came 6
# frames late on 2 cores; the default keeps them no staler, since staleness costs accuracy
# (eval video's low-latency row on the 15 Hz clip: 63.72 at 1 frame late, 62.81 at 2, 59.59 at 6).
MAX_DELAY_FRAMES = 6
