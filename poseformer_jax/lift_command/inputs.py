"""The lifting command's inputs: what INPUT is (`source`) and the 2D keypoints it holds.

* `source` — a video, a keypoint file or a camera, from the command's options.
* `read_clip` — one person from a keypoint file (or one ``--track`` of a
  multi-person file), with image size and fps from flags, file or video.
* `read_tracks` — the people of a per-person records file with track ids
  (`poseformer_jax.video.tracks`).
* `read_video` — a video through the detector (`poseformer_jax.video.detect`).

A `Clip` is what the later stages (fill, lift, render, export) work on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.lifter import check_image_size
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.video import detect, formats, render, tracks


@dataclass
class Source:
  kind: str  # "video", "keypoints" or "camera"
  path: Path | None
  fmt: str | None  # keypoint layout ("keypoints" only)
  stem: str


@dataclass
class Clip:
  """2D input of one person: (T, 17, 2) H36M pixels, NaN where missing."""
  keypoints: np.ndarray
  size: tuple[int, int]
  fps: float
  video: Path | None = None  # drawn under the 2D skeleton
  detections: dict | None = None  # raw detector output (saved with --save-keypoints)
  first_frame: int = 0  # video frame of keypoints[0]


def source(opts) -> Source:
  if opts.webcam:
    if opts.input or opts.keypoints:
      raise DataError("bad command line: --webcam takes no INPUT or --keypoints")
    return Source("camera", None, None, "webcam")
  given = opts.input or opts.keypoints
  if given is None:
    raise DataError("bad command line: give a VIDEO, a keypoint file (--keypoints FILE) or "
                    "--webcam (see --help)")
  path = Path(given)
  if opts.input is not None and detect.is_video(path):
    if not path.is_file():
      raise DataError(f"{path}: no such video file")
    if opts.video is not None and Path(opts.video).resolve() != path.resolve():
      raise DataError(f"--video {opts.video}: the input is already the video {path}")
    return Source("video", path, None, path.stem)
  fmt = opts.format or formats.layout_of(path)
  if fmt is None:
    if not path.exists():
      raise DataError(f"{path}: no such keypoint file")
    raise DataError(f"{path}: --format is required ({', '.join(formats.FORMATS)})")
  return Source("keypoints", path, fmt, path.stem)


def read_tracks(opts, src: Source) -> dict | None:
  """The tracks of a multi-person file with track ids; None for a one-person input."""
  found = tracks.read_tracks(src.path, src.fmt, min_score=opts.min_score)
  return None if found is None or None in found else found


def read_clip(opts, src: Source) -> Clip:
  """One person's keypoints from a file (see the module doc)."""
  found = tracks.read_tracks(src.path, src.fmt, min_score=opts.min_score)
  first, size, fps = 0, None, None
  if opts.track is not None:
    if found is None or None in found:
      raise DataError(f"{src.path}: --track needs per-person records with track ids")
    if opts.track not in found:
      raise DataError(f"{src.path}: no track {opts.track!r}; tracks: "
                      f"{', '.join(tracks.sort_ids(found))}")
    frames, kps = found[opts.track]
    first = int(frames[0])
  elif found is not None:  # records without ids, one person per frame
    frames, kps = found[None]
    first = int(frames[0])
  else:
    kps, size, fps = formats.load_keypoints(src.path, src.fmt, min_score=opts.min_score)
  if opts.max_frames:
    kps = kps[:opts.max_frames]
  size, fps = size_and_fps(opts, src, size, fps)
  print(f"read {kps.shape[0]} frames ({src.fmt}) from {src.path}; image {size[0]}x{size[1]}, "
        f"{fps:g} fps")
  return Clip(kps, size, fps, video=Path(opts.video) if opts.video else None, first_frame=first)


def size_and_fps(opts, src: Source, size, fps) -> tuple[tuple[int, int], float]:
  """Image size (w, h) pixels and fps of keypoints: flags, else the file's, else --video's."""
  video = render.video_info(opts.video) if opts.video is not None else None
  if opts.image_size is not None:
    size = tuple(opts.image_size)
  if video is not None and size is not None and tuple(size) != tuple(video["size"]):
    raise DataError(f"{opts.video}: video is {video['size'][0]}x{video['size'][1]} but the "
                    f"keypoints' image size is {size[0]}x{size[1]}")
  size = size or (video["size"] if video else None)
  if size is None:
    raise DataError(f"{src.path}: the image size is unknown; pass --image-size W,H or --video")
  try:
    check_image_size(size)
  except DataError as e:
    raise DataError(f"{src.path}: {e}") from None
  fps = opts.fps or fps or (video["fps"] if video else None)
  if fps is None:
    print("fps unknown (not in the keypoint file, no --video, no --fps): using 25")
    fps = 25.0
  return tuple(int(v) for v in size), float(fps)


def read_video(opts, src: Source, summary: Summary) -> Clip:
  """Detection over the video (timed as the stage "detect")."""
  info = detect.open_video(src.path)
  if opts.image_size is not None and tuple(opts.image_size) != tuple(info["size"]):
    raise DataError(f"{src.path}: video is {info['size'][0]}x{info['size'][1]}, not "
                    f"--image-size {opts.image_size[0]}x{opts.image_size[1]}")
  with summary.stage("detect", note="MediaPipe Pose, full") as row:
    det = detect.detect_video(src.path, max_frames=opts.max_frames,
                              progress=not opts.no_progress)
    row[1] = (row[1] or 0) + len(det["keypoints"])
  kps = formats.to_h36m(det["keypoints"], det["scores"], det["layout"], opts.min_score,
                        det["detected"])
  fps = opts.fps or det["fps"] or 25.0
  return Clip(kps, tuple(info["size"]), fps, video=src.path, detections=det)
