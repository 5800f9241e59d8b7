"""The lifting command's inputs: what INPUT is (`source`) and the people it holds (`Clip`).

* `source` — a video, a keypoint file or a camera, from the command's options.
* `read_file` — a keypoint file: one person, or the people of a per-person
  records file with track ids (`poseformer_jax.video.tracks`), with image size
  and fps from flags, file or ``--video``.
* `read_video` — every person in a video, followed from frame to frame
  (`poseformer_jax.video.people`), one track each.
* `select` — the people ``--person`` asks for (all, the largest, one id), and
  whether the outputs are one person's or keyed by track.

Every person keeps the detector's positions of all confidences beside the
confident ones (`Person.estimates`), for the low-confidence fallback of
`poseformer_jax.gaps.use_estimates`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from poseformer_jax import trajectory
from poseformer_jax.errors import DataError
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.lifter import check_image_size, focal_px_for
from poseformer_jax.video import ffmpeg, formats, people, tracks


@dataclass
class Source:
  kind: str  # "video", "keypoints" or "camera"
  path: Path | None
  fmt: str | None  # keypoint layout ("keypoints" only)
  stem: str


@dataclass
class Person:
  """One person's 2D input, H36M-17 pixels.

  id: the track id; None for the only person of a one-person input.
  frames: (N,) int, the video frame of each row (consecutive).
  keypoints: (N, 17, 2) NaN where missing or below the confidence threshold.
  estimates: (N, 17, 2) the detector's positions at any confidence (NaN where it
    gave none), or None when the input has no scores to tell.
  """
  id: str | None
  frames: np.ndarray
  keypoints: np.ndarray
  estimates: np.ndarray | None = None

  def found(self) -> np.ndarray:
    """(N,) bool: the frames where the detector placed any joint of the person."""
    known = self.keypoints if self.estimates is None else self.estimates
    return np.isfinite(known).all(-1).any(-1)


@dataclass
class Clip:
  """The people of one input, with what the later stages need."""
  people: list[Person]
  size: tuple[int, int]  # (w, h) pixels
  fps: float
  layout: str  # the keypoints' layout before mapping (for the confidence threshold)
  video: Path | None = None  # drawn under the 2D skeletons
  detections: dict | None = None  # raw detector output (saved with --save-keypoints)
  tracked: bool = False  # outputs keyed by track id (several people), else one person's


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
  if opts.input is not None and ffmpeg.is_video(path):
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


def person(track_id, frames, raw, scores, layout: str, min_score, detected=None) -> Person:
  """A `Person` from detector output in `layout` (keypoints (N, J, 2), scores (N, J))."""
  kps, est = formats.to_h36m_and_estimates(raw, scores, layout, min_score, detected)
  return Person(track_id, np.asarray(frames, np.int64), kps, None if scores is None else est)


def read_file(opts, src: Source) -> Clip:
  """The people of a keypoint file (see the module doc)."""
  found = tracks.read_tracks(src.path, src.fmt)
  size = fps = None
  if found is not None:  # per-person records; {None: ...} when they carry no track ids
    persons = [person(i, *found[i], src.fmt, opts.min_score) for i in tracks.sort_ids(found)]
    size, fps = tracks.records_info(src.path)
  else:
    raw, scores, detected, size, fps = formats.read_keypoints(src.path, src.fmt)
    persons = [person(None, np.arange(len(raw)), raw, scores, src.fmt, opts.min_score,
                      detected)]
  size, fps = size_and_fps(opts, src, size, fps)
  rows = sum(len(p.frames) for p in persons)
  print(f"read {rows} rows of {len(persons)} {'person' if len(persons) == 1 else 'people'} "
        f"({src.fmt}) from {src.path}; image {size[0]}x{size[1]}, {fps:g} fps")
  return Clip(persons, size, fps, src.fmt, video=Path(opts.video) if opts.video else None,
              tracked=persons[0].id is not None)


def size_and_fps(opts, src: Source, size, fps) -> tuple[tuple[int, int], float]:
  """Image size (w, h) pixels and fps of keypoints: flags, else the file's, else --video's."""
  video = ffmpeg.video_info(opts.video) if opts.video is not None else None
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


def video_size(opts, src: Source) -> tuple[int, int]:
  """The video's (w, h) pixels; a one-line error when ``--image-size`` says otherwise."""
  info = ffmpeg.video_info(src.path)
  if opts.image_size is not None and tuple(opts.image_size) != tuple(info["size"]):
    raise DataError(f"{src.path}: video is {info['size'][0]}x{info['size'][1]}, not "
                    f"--image-size {opts.image_size[0]}x{opts.image_size[1]}")
  return tuple(info["size"])


def read_video(opts, src: Source, summary: Summary, on_frame=None) -> Clip:
  """Every person in the video (`poseformer_jax.video.people`; timed as the stage "detect"),
  one track each. `on_frame`: see `people.detect_people`."""
  size = video_size(opts, src)
  with summary.stage("detect", note="MediaPipe Pose Landmarker, every person") as row:
    det = people.detect_people(src.path, max_frames=opts.max_frames,
                               progress=not opts.no_progress, on_frame=on_frame)
    row[1] = (row[1] or 0) + det["frames"]
  found = det["tracks"]
  if not found:
    raise DataError(f"{src.path}: no person in any of the {det['frames']} frames of the video")
  persons = [person(i, *found[i], det["layout"], opts.min_score) for i in tracks.sort_ids(found)]
  fps = opts.fps or det["fps"] or 25.0
  return Clip(persons, size, fps, det["layout"], video=src.path, detections=det, tracked=True)


def select(opts, clip: Clip, where: str) -> Clip:
  """The people ``--person`` (or ``--track``) asks for, within the first ``--max-frames``.

  ``all`` (the default) lifts every track found in at least ``--min-track-frames``
  frames (outputs keyed by track); ``largest`` (the tallest in the image, median
  over its frames) or an id lifts that one person (one person's outputs). Errors
  name `where` (the input).
  """
  if opts.max_frames:
    first = min(int(p.frames[0]) for p in clip.people)
    cut = [_cut(p, first + opts.max_frames) for p in clip.people]
    clip = replace(clip, people=[p for p in cut if len(p.frames)])
  wanted = opts.track or opts.person or "all"
  if not clip.tracked:
    if wanted not in ("all", "largest"):
      raise DataError(f"{where}: --person {wanted}: the input has no track ids (one person)")
    return clip
  ids = [p.id for p in clip.people]
  if wanted == "all":
    keep = [p for p in clip.people if p.found().sum() >= opts.min_track_frames]
    if not keep:
      longest = max(int(p.found().sum()) for p in clip.people)
      raise DataError(f"{where}: no track has {opts.min_track_frames} or more frames (longest: "
                      f"{longest}); lower --min-track-frames")
    return replace(clip, people=keep)
  if wanted == "largest":
    chosen = max(clip.people, key=lambda p: (height(p), int(p.found().sum())))
  elif wanted in ids:
    chosen = clip.people[ids.index(wanted)]
  else:
    raise DataError(f"{where}: no track {wanted!r}; tracks: {', '.join(ids)}")
  return replace(clip, people=[chosen], tracked=False)


def height(p: Person) -> float:
  """The person's median height in the image, pixels (top to bottom confident joint)."""
  y = p.keypoints[..., 1]
  ok = np.isfinite(y)
  rows = ok.any(-1)
  if not rows.any():
    return 0.0
  top, bottom = np.where(ok, y, np.inf).min(-1), np.where(ok, y, -np.inf).max(-1)
  return float(np.median((bottom - top)[rows]))


def _cut(p: Person, stop: int) -> Person:
  keep = p.frames < stop
  return replace(p, frames=p.frames[keep], keypoints=p.keypoints[keep],
                 estimates=None if p.estimates is None else p.estimates[keep])


def focal_px(opts, size) -> float:
  """The camera's focal length (pixels) for the root trajectory: --focal, else from --fov,
  else the default field of view, with one warning line (absolute depth scales with it)."""
  if opts.focal is None and opts.fov is None:
    print(f"warning: no --focal or --fov: the root trajectory assumes a "
          f"{trajectory.DEFAULT_FOV_DEG:g} degree horizontal field of view, so absolute depth "
          "is only as good as that guess", file=sys.stderr)
  return focal_px_for(size, opts.focal, opts.fov)
