"""Online lifting (``--stream``, ``--webcam``): frames go one at a time through the detector
(for a video or camera) and `poseformer_jax.stream.StreamingLifter`; a keypoint file is
replayed frame by frame. Three threads overlap: frames are decoded ahead at the detector's
size (`poseformer_jax.video.reader`), detected in a second thread, lifted in the calling one;
``--latency N`` answers N frames after a frame arrives instead of (F - 1) / 2. One person:
MediaPipe's own tracking follows the most prominent one (a keypoint file with several
tracks needs ``--person ID``).

A joint not yet seen above the confidence threshold takes the detector's low-confidence
estimate of the current frame (the causal form of `poseformer_jax.gaps.use_estimates`,
marked ``low_confidence``); a joint missing in a frame keeps its last position.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.lift_command import inputs
from poseformer_jax.lift_command.inputs import Clip, Source
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.lifter import Lifter
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import detect, ffmpeg, formats, reader


def _rows(opts, images, detector, raw: list, summary, info: dict):
  """Yields ((17, 2) H36M row, (17, 2) its estimates) one frame at a time; detections go to
  `raw`, the image size into `info`."""
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
    if "decoded" in info:  # a video decoded smaller than its pixels
      kps = detect.to_video_pixels(kps, info["decoded"], info["size"])
    info.setdefault("size", (image.shape[1], image.shape[0]))
    raw.append((kps[0], scores[0]))
    info["elapsed"] = time.perf_counter() - start
    row, est = formats.to_h36m_and_estimates(kps, scores, detector.layout, opts.min_score)
    yield row[0], est[0]


def _file_rows(opts, src: Source, info: dict):
  clip = inputs.select(opts, inputs.read_file(opts, src), str(src.path))
  if clip.tracked:
    raise DataError(f"--stream lifts one person; pick one with --person ID (tracks: "
                    f"{', '.join(p.id for p in clip.people)})")
  one = clip.people[0]
  info.update(size=clip.size, fps=clip.fps, first=int(one.frames[0]), found=int(
      (~np.isnan(one.keypoints).all(-1)).sum()))
  est = one.estimates if one.estimates is not None else np.full_like(one.keypoints, np.nan)
  return zip(one.keypoints, est)


def run_stream(opts, src: Source, lifter: Lifter, summary: Summary) -> tuple[list[dict], Clip]:
  """Frames one at a time through `StreamingLifter` -> ([one person's result], clip)."""
  info: dict = {"first": 0}
  raw: list = []
  if src.kind == "keypoints":
    images = _file_rows(opts, src, info)
  elif src.kind == "video":  # decoded ahead, at the detector's size (keypoints scaled back)
    info["fps"] = ffmpeg.video_info(src.path)["fps"]
    images, info["decoded"], info["size"] = detect.frames_for(
        detect.MediaPipeDetector, src.path, opts.max_frames)
  else:  # the camera opens here: no camera is an error before the detector starts
    images = reader.prefetch(detect.iter_camera(opts.camera, opts.max_frames,
                                                detect.MediaPipeDetector.max_side), depth=2)
  try:
    detector = detect.MediaPipeDetector() if src.kind != "keypoints" else None
  except BaseException:
    getattr(images, "close", lambda: None)()  # the reader thread
    raise
  muted = detect.native_stderr_muted() if detector else contextlib.nullcontext(sys.stderr)
  stream, poses, low_rows = None, [], []
  seen = np.zeros(17, bool)  # joints seen above the threshold so far
  rows = _rows(opts, images, detector, raw, summary, info)
  if detector is not None:  # detection in a thread of its own, the lifting here: they overlap
    rows = reader.prefetch(rows, depth=4)
  with muted as err, tqdm(desc="stream", unit="frame", file=err,
                          disable=opts.no_progress) as bar:
    try:
      for row, est in rows:
        if stream is None:
          focal = inputs.focal_px(opts, info["size"]) if lifter.has_trajectory else None
          stream = StreamingLifter(lifter, info["size"], record=True, focal_px=focal,
                                   latency=opts.latency)
        seen |= ~np.isnan(row).any(-1)
        low = ~seen & np.isfinite(est).all(-1)
        row = np.where(low[:, None], est, row)
        low_rows.append(low)
        with summary.stage("lift", 1, f"online, model {lifter.variant}, latency "
                                      f"{stream.latency} frames"):
          pose = stream.push(row)
        if pose is not None:
          poses.append(pose)
        bar.update()
    except KeyboardInterrupt:  # Ctrl-C ends a webcam run normally
      if src.kind != "camera":
        raise
    finally:
      for part in (rows, images):  # the detection thread, then the reader thread
        getattr(part, "close", lambda: None)()
      if detector is not None:
        detector.close()
  return _finish(opts, src, stream, poses, low_rows, raw, info, summary)


def _finish(opts, src, stream, poses, low_rows, raw, info, summary):
  name = src.path or f"camera {opts.camera}"
  if stream is None:
    raise DataError(f"{name}: no frames")
  n = stream.frames_pushed
  if stream.first_frame is None:
    raise DataError(f"{name}: no person (with every joint seen) in any of the {n} frames")
  with summary.stage("lift"):
    poses += list(stream.flush())
  kps = np.stack(stream.history["keypoints_2d"])
  first = stream.first_frame
  result = dict(track=None, frames=info["first"] + first + np.arange(len(kps)),
                poses_3d=np.stack(poses).astype(np.float32), keypoints_2d=kps,
                filled=np.stack(stream.history["filled"]),
                low_confidence=np.stack(low_rows[first:first + len(kps)]))
  if stream.history["root_3d"]:
    result["root_3d"] = np.stack(stream.history["root_3d"]).astype(np.float32)
  fps = opts.fps or info.get("fps") or (n / info["elapsed"] if info.get("elapsed") else 25.0)
  detections = None
  if raw:
    det = np.stack([k for k, _ in raw])
    detections = {"keypoints": det, "scores": np.stack([s for _, s in raw]),
                  "detected": np.isfinite(det).all(-1).any(-1), "layout": "mediapipe33"}
  video = src.path if src.kind == "video" else (Path(opts.video) if opts.video else None)
  clip = Clip([], tuple(info["size"]), float(fps), "mediapipe33" if raw else src.fmt,
              video=video, detections=detections)
  found = int(detections["detected"].sum()) if detections is not None else info["found"]
  summary.facts += [f"{Path(name).name}: {n} frames, {clip.size[0]}x{clip.size[1]}, "
                    f"{clip.fps:g} fps", f"person found in {found}/{n} frames",
                    f"online: {first} leading frames skipped, "
                    f"{int(result['filled'].any(-1).sum())} frames with held joints"]
  return [result], clip
