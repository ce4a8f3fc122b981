#!/usr/bin/env bash
# Re-run the commands of the results (README and docs/results.md), writing their JSON files and plots.
#
#   bash docs/reproduce_results.sh [accuracy] [scheduling] [timing] [segment]   (default: all four)
#
# Each group is one kind of work, so groups can run at different times:
#   accuracy    eval image (val clip, the per-frame ladder's sizes, the held-out drive when
#               DEV_WEIGHTS is set), eval video on the val clip, eval agreement on the three
#               held-out real clips (about 25 min on 2 cores)
#   scheduling  eval scheduling on the three held-out clips, whole, at intervals 5 and 8, with
#               the paper's kernels and with flow (about 50 min)
#   timing      bench split, the propagated frame's cost, eval tradeoff at 5 fps, bench fed as
#               fast as possible and at 10 fps (about 50 min); run these on an otherwise idle
#               machine: anything beside them (a training, a test suite) changes every ratio
#   segment     segment on a 1080p clip made by upscaling highway_day (about 2 min)
#
# Settings (environment): OUT (default docs/results), WEIGHTS / PROPAGATION / SCHEDULER (default:
# the bundled files), DEV_WEIGHTS (a network trained without drive 0006R0, e.g.
# runs/e_dev/weights.pt; without it the held-out-drive row is skipped), DATA (default
# ../shared/data), THREADS (default 2), TAG (a suffix for every file name, default none).
# Every command is printed before it runs; the first that fails stops the script. DRY_RUN=1 prints
# the commands without running them.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-docs/results}
DATA=${DATA:-../shared/data}
THREADS=${THREADS:-2}
TAG=${TAG:-}
VIDEO=$DATA/video
HELD_OUT="city_slow_626x360 autobahn_960x540 static_street_640x352"
mkdir -p "$OUT"

model_flags=()
[ -n "${WEIGHTS:-}" ] && model_flags+=(--weights "$WEIGHTS")
prop_flags=()
[ -n "${PROPAGATION:-}" ] && prop_flags+=(--propagation "$PROPAGATION")
sched_flags=()
[ -n "${SCHEDULER:-}" ] && sched_flags+=(--scheduler "$SCHEDULER")

run() {
  echo "+ $*" >&2
  if [ -z "${DRY_RUN:-}" ]; then "$@"; fi
}

held_out_flags() {
  local clip
  for clip in $HELD_OUT; do printf -- '--video\n%s\n' "$VIDEO/$clip.mp4"; done
}

accuracy() {
  run lowlatseg eval image --split val "${model_flags[@]}" --threads "$THREADS" --json "$OUT/eval_image_val$TAG.json"
  local size
  for size in 288x384 240x320 192x256 144x192; do
    run lowlatseg eval image --split val --size "$size" "${model_flags[@]}" --threads "$THREADS" \
      --json "$OUT/eval_image_val_$size$TAG.json"
  done
  if [ -n "${DEV_WEIGHTS:-}" ]; then
    run lowlatseg eval image --split train --drive 0006R0 --weights "$DEV_WEIGHTS" --threads "$THREADS" \
      --json "$OUT/eval_image_dev_0006R0$TAG.json"
    run lowlatseg eval image --split val --weights "$DEV_WEIGHTS" --threads "$THREADS" \
      --json "$OUT/eval_image_val_devnet$TAG.json"
  fi
  run lowlatseg eval video --split val --interval 5 "${model_flags[@]}" "${prop_flags[@]}" "${sched_flags[@]}" \
    --threads "$THREADS" --json "$OUT/eval_video_val_n5$TAG.json"
  local clip
  for clip in $HELD_OUT; do
    run lowlatseg eval agreement --video "$VIDEO/$clip.mp4" --interval 5 --size 360 --max-frames 150 \
      "${model_flags[@]}" "${prop_flags[@]}" --threads "$THREADS" --json "$OUT/eval_agreement_${clip%%_[0-9]*}_n5$TAG.json"
  done
}

scheduling() {
  local clips
  mapfile -t clips < <(held_out_flags)
  run lowlatseg eval scheduling "${clips[@]}" --intervals 5 8 --propagation-method adaptive \
    "${model_flags[@]}" "${prop_flags[@]}" "${sched_flags[@]}" --threads "$THREADS" \
    --json "$OUT/eval_scheduling_video$TAG.json"
  run lowlatseg eval scheduling "${clips[@]}" --intervals 5 8 \
    "${model_flags[@]}" "${prop_flags[@]}" "${sched_flags[@]}" --threads "$THREADS" \
    --json "$OUT/eval_scheduling_video_flow$TAG.json"
}

timing() {
  local clip=$VIDEO/highway_day_960x540.mp4
  run lowlatseg bench split "${model_flags[@]}" --threads "$THREADS" --json "$OUT/bench_split$TAG.json"
  run python docs/figures/propagated_cost.py "${model_flags[@]}" --out "$OUT/propagated_cost$TAG.json"
  run lowlatseg eval tradeoff --fps 5 --intervals 5 --rounds 3 "${model_flags[@]}" "${prop_flags[@]}" \
    "${sched_flags[@]}" --threads "$THREADS" --plot "$OUT/tradeoff_val$TAG.png" --json "$OUT/tradeoff_val$TAG.json"
  run lowlatseg bench --video "$clip" --fps 0 --repeat 6 --rounds 6 "${model_flags[@]}" "${prop_flags[@]}" \
    "${sched_flags[@]}" --threads "$THREADS" \
    --json "$OUT/bench_highway_day_rounds$TAG.json" --plot "$OUT/bench_highway_day_rounds$TAG.png"
  run lowlatseg bench --video "$clip" --size 360x480 --fps 10 --repeat 2 --rounds 2 "${model_flags[@]}" \
    "${prop_flags[@]}" "${sched_flags[@]}" --threads "$THREADS" \
    --json "$OUT/bench_highway_day_10fps$TAG.json" --plot "$OUT/bench_highway_day_10fps$TAG.png"
  run lowlatseg bench --video "$clip" --size 360x480 --fps 10 --repeat 2 --rounds 2 --no-spare-keyframes \
    "${model_flags[@]}" "${prop_flags[@]}" "${sched_flags[@]}" --threads "$THREADS" \
    --json "$OUT/bench_highway_day_10fps_nospare$TAG.json"
}

segment_1080p() {
  local work
  work=$(mktemp -d)
  # the clip of the README's row: highway_day upscaled to 1920x1080, H.264 (libx264)
  run python - "$VIDEO/highway_day_960x540.mp4" "$work/highway_day_1080p.mp4" <<'PY'
import sys

import av
import cv2

src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as inp, av.open(dst, "w") as out:
    rate = inp.streams.video[0].average_rate
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
    for frame in inp.decode(video=0):
        big = cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_CUBIC)
        out.mux(stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")))
    out.mux(stream.encode())
PY
  run lowlatseg segment "$work/highway_day_1080p.mp4" --out "$work/overlay.mp4" "${model_flags[@]}" \
    "${prop_flags[@]}" "${sched_flags[@]}" --threads "$THREADS" --stats "$OUT/segment_1080p_stats$TAG.json"
  rm -rf "$work"
}

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(accuracy scheduling timing segment)
for group in "${groups[@]}"; do
  case $group in
    accuracy) accuracy ;;
    scheduling) scheduling ;;
    timing) timing ;;
    segment) segment_1080p ;;
    *) echo "unknown group '$group': choose from accuracy, scheduling, timing, segment" >&2; exit 2 ;;
  esac
done
