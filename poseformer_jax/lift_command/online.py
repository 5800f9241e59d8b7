"""Online lifting (``--stream``, ``--webcam``): frames go one at a time through the detector
(for a video or camera) and `poseformer_jax.stream.StreamingLifter`; a keypoint file is
replayed frame by frame.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.lifter import Lifter
from poseformer_jax.lift_command.inputs import Clip, Source, read_clip
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import detect, formats


def _frames(opts, images, detector, raw: list, summary, info: dict):
  """Yields (17, 2) H36M rows one at a time; detections go to `raw`, sizes into `info`."""
  if detector is None:  # keypoints read from a file
    yield from images
    return
  start = time.perf_counter()
  while True:
    with summary.stage("detect"):
      image = next(images, None)
      if image is None:
        break
      kps, scores = detector.detect([image])
    summary.count("detect")
    info.setdefault("size", (image.shape[1], image.shape[0]))
    raw.append((kps[0], scores[0]))
    info["elapsed"] = time.perf_counter() - start
    yield formats.to_h36m(kps, scores, detector.layout, opts.min_score)[0]


def run_stream(opts, src: Source, lifter: Lifter, summary: Summary):
  """Frames one at a time through `StreamingLifter` -> (clip, poses, filled, mask)."""
  info: dict = {}
  raw: list = []
  if src.kind == "keypoints":
    clip = info["clip"] = read_clip(opts, src)
    info.update(size=clip.size, fps=clip.fps)
    images = iter(clip.keypoints)
  elif src.kind == "video":
    info["fps"] = detect.open_video(src.path)["fps"]
    images = detect.iter_frames(src.path, opts.max_frames)
  else:
    images = detect.iter_camera(opts.camera, opts.max_frames)
  detector = detect.MediaPipeDetector() if src.kind != "keypoints" else None
  muted = detect.native_stderr_muted() if detector else contextlib.nullcontext(sys.stderr)
  stream, poses = None, []
  with muted as err, tqdm(desc="stream", unit="frame", file=err,
                          disable=opts.no_progress) as bar:
    try:
      for row in _frames(opts, images, detector, raw, summary, info):
        if stream is None:
          stream = StreamingLifter(lifter, info["size"], record=True)
        with summary.stage("lift", 1, f"online, model {lifter.variant}, latency "
                                      f"{lifter.pad} frames"):
          pose = stream.push(row)
        if pose is not None:
          poses.append(pose)
        bar.update()
    except KeyboardInterrupt:  # Ctrl-C ends a webcam session normally
      if src.kind != "camera":
        raise
    finally:
      if detector is not None:
        detector.close()
  return _finish_stream(opts, src, stream, poses, raw, info, summary)


def _finish_stream(opts, src, stream, poses, raw, info, summary):
  name = src.path or f"camera {opts.camera}"
  if stream is None:
    raise DataError(f"{name}: no frames")
  n = stream.frames_pushed
  if stream.first_frame is None:
    raise DataError(f"{name}: no person (with every joint seen) in any of the {n} frames")
  with summary.stage("lift"):
    poses += list(stream.flush())
  filled = np.stack(stream.history["keypoints_2d"])
  mask = np.stack(stream.history["filled"])
  fps = opts.fps or info.get("fps") or (n / info["elapsed"] if info.get("elapsed") else 25.0)
  detections = None
  if raw:
    kps = np.stack([k for k, _ in raw])
    detections = {"keypoints": kps, "scores": np.stack([s for _, s in raw]),
                  "detected": np.isfinite(kps).all(-1).any(-1), "layout": "mediapipe33"}
  video = src.path if src.kind == "video" else (Path(opts.video) if opts.video else None)
  clip = Clip(filled, tuple(info["size"]), float(fps), video=video,
                       detections=detections, first_frame=stream.first_frame)
  found = (detections["detected"] if detections is not None
           else ~np.isnan(info["clip"].keypoints).all(-1).all(-1))
  summary.facts += [f"{Path(name).name}: {n} frames, {clip.size[0]}x{clip.size[1]}, "
                    f"{clip.fps:g} fps", f"person found in {int(found.sum())}/{n} frames",
                    f"online: {stream.first_frame} leading frames skipped, "
                    f"{int(mask.any(-1).sum())} frames with held joints"]
  return clip, np.stack(poses).astype(np.float32), filled, mask
