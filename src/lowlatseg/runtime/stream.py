"""The online runtime: ``reset()`` and ``step(frame) -> FrameResult``, one object per stream.

Modes (see :func:`~lowlatseg.runtime.build.build_runtime`):

* ``per-frame``: ``low -> high -> head`` on every frame;
* ``fixed`` / ``adaptive``: keyframes chosen by a policy (every N frames / predicted deviation
  above a threshold); a keyframe runs ``high`` before it is answered; other frames are
  answered by adaptive propagation with low-level fusion from the last keyframe;
* ``low-latency``: as ``adaptive`` (or ``fixed``), but a frame chosen as a keyframe is answered
  at once by propagation from the previous keyframe, then its ``high`` runs in the background
  (by default in slices between the next frames, on the stream's compute thread; see
  runtime/sliced.py); its features are swapped in when ready. No frame ever waits for
  ``high``.

Spare keyframes (low-latency, on by default): a keyframe whose features were ready at the very
next frame shows that the stream leaves time for a whole ``high`` between frames (a slow stream,
or a fast machine); that next frame is then made a keyframe too, without asking the policy, so
on such a stream every frame is propagated from the frame before it with fresh features. As soon
as a keyframe is ready later than that (frames come faster), the policy decides again. The idle
time is spent on ``high``; no frame waits for more than the slice in progress.

The sequential and live low-latency runtimes share this one step function; only the executor
differs. With ``delay_frames=D`` the new keyframe is swapped in exactly D frames after it was
chosen (its ``high`` is waited for, or finished, if it is late), which makes evaluation
deterministic and lets a test show both give the same labels. With ``delay_frames=None``
(live use) it is swapped in at the first frame after its ``high`` is done.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from lowlatseg.errors import WorkerError
from lowlatseg.nn.inference import for_inference
from lowlatseg.nn.labels import load_compiled, upsampled_labels
from lowlatseg.nn.splitnet import SplitSegNet
from lowlatseg.propagation.methods import Current, KeyState, Propagator
from lowlatseg.propagation.produce import make_key, propagated_logits
from lowlatseg.runtime.executors import InlineExecutor, KeyExecutor, set_thread_count
from lowlatseg.runtime.sliced import SlicedExecutor
from lowlatseg.runtime.frames import FrameResult, network_size, prepare
from lowlatseg.runtime.state import PendingKey, StreamState
from lowlatseg.runtime.steady import steady
from lowlatseg.scheduling.policies import EveryFrame, KeyframePolicy
from lowlatseg.scheduling.scene_cut import is_cut, signature



class StreamRuntime:
    def __init__(
        self,
        model: SplitSegNet,
        *,
        method: Propagator,
        policy: KeyframePolicy,
        background: bool = False,
        executor: KeyExecutor | None = None,
        delay_frames: int | None = None,
        size: tuple[int, int] | int | None = (360, 480),
        threads: tuple[int, int] | None = None,
        scene_cuts: bool = True,
        spare_keyframes: bool = False,
    ) -> None:
        """``threads``: (idle, busy) torch thread counts for the background mode: ``idle`` while no
        keyframe is in flight, ``busy`` (e.g. half) while the worker runs ``high``, so the two never
        oversubscribe the cores and the main path uses them all the rest of the time.
        ``scene_cuts``: a frame that starts another scene than the frame before it is made a
        keyframe at once, whatever the policy says (scheduling/scene_cut.py); in low-latency mode
        while a keyframe is in flight, at the first frame after it is swapped in.
        ``spare_keyframes`` (background mode only): see the module doc."""
        if delay_frames is not None and delay_frames < 1:
            raise ValueError("delay_frames must be at least 1 (a keyframe chosen at t is usable from t + 1)")
        self.model = for_inference(model)  # BatchNorm folded, channels-last: the same function, faster
        self.method = for_inference(method) if isinstance(method, nn.Module) else method
        self.policy = policy
        self.background = background
        self.executor: KeyExecutor = executor or (SlicedExecutor() if background else InlineExecutor())
        self.delay_frames = delay_frames
        self.size = size
        self.threads = threads
        self.scene_cuts = scene_cuts
        self.spare_keyframes = spare_keyframes and background
        self.state = StreamState()
        load_compiled()  # the label map's compiled loop: loaded now, not inside the first frame
        steady()

    @property
    def mode(self) -> str:
        if isinstance(self.policy, EveryFrame):
            return "per-frame"
        return "low-latency" if self.background else self.policy.name

    def reset(self) -> None:
        """Forget the stream (waits for a keyframe still in flight, then drops it)."""
        if self.state.pending is not None:
            try:
                self.executor.wait(self.state.pending.future)
            except Exception:
                pass
        self.state = StreamState()
        steady()
        if self.threads:
            set_thread_count(self.threads[0])

    def close(self) -> None:
        self.reset()
        self.executor.close()

    def __enter__(self) -> StreamRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _swap_if_ready(self, i: int) -> None:
        p = self.state.pending
        if p is None:
            return
        if p.ready_at is not None:
            if i < p.ready_at:
                return
        elif not p.future.done():
            return
        self.state.pending = None
        if self.threads:
            set_thread_count(self.threads[0])  # worker done (or failed): the main path gets every thread
        try:
            f_high = self.executor.wait(p.future)
        except Exception as e:
            raise WorkerError(f"the keyframe worker failed on frame {p.index}: {type(e).__name__}: {e}") from e
        self.state.key = KeyState(index=p.index, image=p.image, f_low=p.f_low, f_high=f_high)
        self.state.spare = self.spare_keyframes and i - p.index <= 1  # ready when the next frame came

    def step(self, frame: np.ndarray) -> FrameResult:
        """frame: H x W x 3 uint8 RGB. Returns labels at the network's input size (the one of the
        stream's first frame: later frames of another size are resized to it)."""
        return self.executor.run(self._step, frame)  # the sliced executor: on its compute thread

    @torch.inference_mode()
    def _step(self, frame: np.ndarray) -> FrameResult:
        t0 = time.perf_counter()
        st, model = self.state, self.model
        i = st.index
        # one network size per stream: a frame of another size (a camera that switched
        # resolution) is resized to it, so keyframe state and labels keep their shapes
        hw = st.hw or network_size(frame.shape[:2], self.size)
        x = prepare(frame, hw)  # checks the frame: a rejected one fixes nothing
        st.hw = hw
        # before low: a high that finishes during this frame's own work does not count as done
        # in the time between frames (spare keyframes), and low gets every thread back at once
        self._swap_if_ready(i)
        f_low = model.low(x)
        cur = Current(index=i, image=x, f_low=f_low)
        choose, dev = True, None
        if self.scene_cuts and not isinstance(self.policy, EveryFrame):
            sig = signature(x)
            st.cut_waiting = st.cut_waiting or (st.previous is not None and is_cut(st.previous, sig))
            st.previous = sig
        if st.key is not None and st.pending is None and st.cut_waiting:
            st.cut_waiting = False  # another scene: a keyframe at once, whatever the policy says
        elif st.key is not None and st.pending is None and st.spare:
            pass  # time for a whole high between frames: a keyframe, the policy not asked
        elif st.key is not None and st.pending is None:
            dev = self.policy.deviation(st.key, cur)
            choose, deviation_sum = self.policy.decide(i - st.last_choice, st.deviation_sum, dev)
            if not choose:
                st.deviation_sum = deviation_sum
        elif st.key is not None:
            choose = False  # one keyframe in flight at a time (a cut waits for the next chance)
        if st.key is None or (choose and not self.background):
            # the stream's first keyframe runs high at once; with spare keyframes the next frame
            # probes whether the stream leaves time for a whole high between frames
            st.spare = st.key is None and self.spare_keyframes
            st.key = make_key(model, i, x, f_low)
            st.last_choice, st.deviation_sum = i, 0.0
            logits = model.head(st.key.f_high, f_low)
            source = i
        else:
            # a chosen frame is answered by propagation too; its high starts once the labels are out
            logits = propagated_logits(model, self.method, st.key, cur, fuse=True)
            source = st.key.index
        # = argmax of the head's bilinear upsampling to hw, computed mostly on the feature grid
        labels = upsampled_labels(logits, hw, dtype=torch.uint8)[0].numpy()
        compute_ms = (time.perf_counter() - t0) * 1000
        if choose and source != i:
            # the new keyframe's high goes to the executor only now: this frame was answered with
            # every core; with the parallel worker, its high competes only with the frames that follow (on
            # a 2-core CPU keyframe frames took 21-25 ms instead of ~14 when it started earlier)
            if self.threads:
                set_thread_count(self.threads[1])  # share the cores with the worker
            future = self.executor.submit(model.high, f_low)
            st.last_choice, st.deviation_sum, st.spare = i, 0.0, False  # recorded with the submission: if anything
            # above had failed, the policy would be asked again on the next frame
            st.pending = PendingKey(
                index=i, image=x, f_low=f_low, future=future,
                ready_at=None if self.delay_frames is None else i + self.delay_frames,
            )
        st.index += 1
        return FrameResult(
            index=i, labels=labels, is_keyframe=choose, keyframe_index=source, compute_ms=compute_ms, deviation=dev,
        )
