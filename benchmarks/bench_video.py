"""Video pipeline throughput per stage: detect, fill, lift (offline and online), render.

    python benchmarks/bench_video.py                       # skater.mp4 of ../shared/data, 60 frames
    python benchmarks/bench_video.py --frames 0 --video ../shared/data/video/ntu_S001C001P001R001A001.avi

What is timed (each stage on the same frames, frames/s = frames / seconds):

* detect — MediaPipe Pose (full model, bundled) on every decoded frame, video decoding
  included (`poseformer_jax.video.detect.detect_video`: one person, what ``--stream`` and
  ``poseformer-jax detect`` use);
* people — every person found and followed, video decoding included
  (`poseformer_jax.video.people.detect_people`: what ``poseformer-jax lift VIDEO`` uses);
* fill   — gap interpolation (`gaps.fill_gaps`);
* lift   — the batched offline lift of the clip (`poseformer_jax.lifter.Lifter`), warm (the
  first call, with JIT compilation, is reported separately);
* stream — `poseformer_jax.stream.StreamingLifter`, one push per frame, warm;
* render — the side-by-side mp4 over the video frames (`render.render_video`).

The model: ``--checkpoint`` (default the shipped ``pretrained:h36m-81_1_3-5subj`` when
present, else random weights of the published 81_1_3 layout: the same cost).
Needs the ``video`` and ``detect`` extras and the clips of ../shared/data/video.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import common
from absl import flags

from bench_lift import random_checkpoint
from poseformer_jax import gaps, pretrained
from poseformer_jax.lifter import Lifter
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import detect, formats, people, render

CLIP = common.REPO.parent / "shared" / "data" / "video" / "skater.mp4"


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def _lifter(spec: str | None) -> tuple[Lifter, str]:
  if spec:
    return Lifter(spec), spec
  if pretrained.DEFAULT in pretrained.available():
    return Lifter(f"pretrained:{pretrained.DEFAULT}"), f"pretrained:{pretrained.DEFAULT}"
  return Lifter(random_checkpoint("81_1_3")), "81_1_3, random weights"


def run_stages(video: Path, frames: int | None, lifter: Lifter) -> tuple[list, dict]:
  det, secs = _timed(lambda: detect.detect_video(video, max_frames=frames, progress=False))
  t, size, fps = len(det["keypoints"]), (det["width"], det["height"]), det["fps"] or 25.0
  kps = formats.to_h36m(det["keypoints"], det["scores"], det["layout"], None, det["detected"])
  rows = [["detect", t, secs]]
  found, secs = _timed(lambda: people.detect_people(video, max_frames=frames, progress=False))
  rows.append(["people", found["frames"], secs])
  (filled, mask), secs = _timed(lambda: gaps.fill_gaps(kps))
  rows.append(["fill", t, secs])
  poses, cold = _timed(lambda: lifter(filled, size))
  _, secs = _timed(lambda: lifter(filled, size))
  rows.append(["lift", t, secs])
  stream = StreamingLifter(lifter, size)
  stream.push(filled[0])  # compiles the batch-1 forward
  stream.reset()

  def online():
    out = [stream.push(k) for k in filled]
    return stream.flush(), out
  _, secs = _timed(online)
  rows.append(["stream", t, secs])
  with tempfile.TemporaryDirectory() as tmp:
    _, secs = _timed(lambda: render.render_video(video, filled, poses, Path(tmp) / "r.mp4", fps,
                                                 image_size=size, filled=mask, progress=False))
  rows.append(["render", t, secs])
  facts = {"frames": t, "image_size": list(size), "fps": fps,
           "detected": float(det["detected"].mean()), "lift_first_call_s": cold,
           "tracks": {tid: int(len(f)) for tid, (f, _, _) in found["tracks"].items()}}
  return rows, facts


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_string("video", str(CLIP), "Clip to run.", flag_values=fv)
  flags.DEFINE_integer("frames", 60, "First N frames (0: all).", flag_values=fv)
  flags.DEFINE_string("checkpoint", None, "Checkpoint (default: see the module doc).",
                      flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  video = Path(fv["video"].value)
  if not video.is_file():
    print(f"error: {video}: no such clip (the shared clips live in ../shared/data/video)",
          file=sys.stderr)
    return 2
  lifter, name = _lifter(fv["checkpoint"].value)
  rows, facts = run_stages(video, fv["frames"].value or None, lifter)
  title = (f"{video.name}: {facts['frames']} frames {facts['image_size'][0]}x"
           f"{facts['image_size'][1]}, person found in {100 * facts['detected']:.0f} %; model "
           f"{name} (F={lifter.num_frames}); lift's first call (JIT) "
           f"{facts['lift_first_call_s']:.1f} s; tracks (frames): {facts['tracks']}")
  table = [[stage, n, secs, n / secs] for stage, n, secs in rows]
  return common.report(["stage", "frames", "seconds", "frames/s"], table, title,
                       fv["json"].value, {"rows": table, **facts, "model": name})


if __name__ == "__main__":
  sys.exit(main())
