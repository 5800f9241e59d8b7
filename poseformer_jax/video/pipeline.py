"""The lifting command, stage by stage: detect (or read) -> fill -> lift -> render, export.

`run(opts)` is ``poseformer-jax lift`` (options from `poseformer_jax.lift.parse`).
Every output is checked before any work (suffix, folder, no silent overwrite),
written under a temporary name and renamed into place only when all stages
succeeded, so a failure leaves nothing half-done. Each stage shows a progress
bar and is timed; the summary at the end gives frames, detection rate, filled
gaps and frames/s per stage. Online lifting (``--stream``, ``--webcam``) and
several people (track ids) are in `poseformer_jax.video.online`.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video import detect, export, formats, gaps

SUFFIXES = {"output": (".npz",), "json": (".json",), "bvh": (".bvh",),
            "save_keypoints": (".npz",), "render": (".mp4", ".gif"), "gif": (".gif",),
            "contact_sheet": (".png",), "html": (".html",)}


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


class Outputs:
  """Planned output files; see the module doc."""

  def __init__(self, overwrite: bool):
    self.overwrite = overwrite
    self.paths: dict[str, Path] = {}
    self._tmp: dict[Path, Path] = {}

  def add(self, flag: str, path, suffixes=None) -> Path:
    path = Path(path)
    suffixes = suffixes or SUFFIXES.get(flag, (path.suffix,))
    name = "--" + flag.replace("_", "-")
    if path.suffix.lower() not in suffixes:
      raise DataError(f"{name} {path}: must end with {' or '.join(suffixes)}")
    for other, p in self.paths.items():
      if p.resolve() == path.resolve():
        raise DataError(f"{name} {path}: same file as --{other.replace('_', '-')}")
    if path.exists() and not self.overwrite:
      raise DataError(f"{path}: already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
      raise DataError(f"{path}: folder {path.parent} does not exist")
    self.paths[flag] = path
    return path

  def tmp(self, flag: str) -> Path:
    """Where to write the output of `flag` until `commit`."""
    path = self.paths[flag]
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    self._tmp[tmp] = path
    return tmp

  def commit(self) -> list[Path]:
    for tmp, path in self._tmp.items():
      os.replace(tmp, path)
    done = list(self._tmp.values())
    self._tmp = {}
    return done

  def discard(self) -> None:
    for tmp in self._tmp:
      tmp.unlink(missing_ok=True)
    self._tmp = {}


class Summary:
  """Stage timings and facts, printed at the end."""

  def __init__(self):
    self.rows: list[list] = []  # [stage, frames, seconds, note]
    self.facts: list[str] = []

  @contextlib.contextmanager
  def stage(self, name: str, frames: int | None = None, note: str = ""):
    """Times a block; repeated stages of one name add up (frames and seconds)."""
    row = next((r for r in self.rows if r[0] == name), None)
    if row is None:
      row = [name, None, 0.0, note]
      self.rows.append(row)
    if frames is not None:
      row[1] = (row[1] or 0) + frames
    start = time.perf_counter()
    try:
      yield row
    finally:
      row[2] += time.perf_counter() - start

  def count(self, name: str, frames: int = 1) -> None:
    """Adds frames to the stage `name` (after its timed block)."""
    row = next(r for r in self.rows if r[0] == name)
    row[1] = (row[1] or 0) + frames

  def text(self) -> str:
    lines = ["summary: " + "; ".join(self.facts),
             f"  {'stage':<8} {'frames':>7} {'seconds':>8} {'frames/s':>9}"]
    for name, frames, secs, note in self.rows:
      rate = f"{frames / secs:9.1f}" if frames and secs > 0 else f"{'':>9}"
      lines.append(f"  {name:<8} {frames if frames is not None else '':>7} {secs:8.2f} {rate}"
                   + (f"  ({note})" if note else ""))
    return "\n".join(lines)


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


def plan_outputs(opts, src: Source) -> Outputs:
  """Outputs with their defaults (see `poseformer_jax.lift.USAGE`), checked."""
  out = Outputs(opts.overwrite)
  detected = src.kind in ("video", "camera")
  if opts.save_keypoints and not detected:
    raise DataError("--save-keypoints is for detections (a video or --webcam input)")
  if detected:
    named = opts.output or opts.render
    prefix = Path(named).with_suffix("") if named else Path(f"{src.stem}_3d")
    defaults = {"output": f"{prefix}.npz", "json": f"{prefix}.json", "bvh": f"{prefix}.bvh",
                "save_keypoints": prefix.parent / f"{src.stem}_mediapipe33.npz"}
  else:
    defaults = {"output": f"{src.stem}_3d.npz"}
  for flag in SUFFIXES:
    value = getattr(opts, flag) or defaults.get(flag)
    if value:
      out.add(flag, value)
  return out


def run(opts) -> int:
  from poseformer_jax.video import online
  src = source(opts)
  summary = Summary()
  if src.kind == "keypoints" and opts.track is None:
    found = online.read_tracks(opts, src)
    if found is not None:
      return online.run_tracks(opts, src, found, summary)
  out = plan_outputs(opts, src)
  try:
    if opts.stream or src.kind == "camera":
      lifter = load_lifter(opts)
      clip, poses, filled, mask = online.run_stream(opts, src, lifter, summary)
    else:  # cheap checks first: a keypoint file before the checkpoint, that before detection
      clip = online.read_clip(opts, src) if src.kind == "keypoints" else None
      lifter = load_lifter(opts)
      clip = clip or read_video(opts, src, summary)
      filled, mask = fill(clip, src, summary)
      poses = lift_clip(opts, lifter, clip, filled, summary)
    write(opts, out, clip, poses, filled, mask, summary)
    written = out.commit()
  except BaseException:
    out.discard()
    raise
  print(summary.text())
  for path in written:
    print(f"wrote {path}")
  return 0


def load_lifter(opts):
  from poseformer_jax.lift import Lifter
  return Lifter(opts.checkpoint, batch_size=opts.batch_size, flip=not opts.no_flip)


def read_video(opts, src: Source, summary: Summary) -> Clip:
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


def fill(clip: Clip, src: Source, summary: Summary):
  """Gap filling (timed); a clip without any person is an error naming the input."""
  t = len(clip.keypoints)
  present = ~np.isnan(clip.keypoints).any(-1)  # (T, 17)
  people = present.any(-1)
  what = "video" if src.kind != "keypoints" else "file"
  if not people.any():
    raise DataError(f"{src.path or 'camera'}: no person in any of the {t} frames of the {what}")
  with summary.stage("fill", t):
    filled, mask = gaps.fill_gaps(clip.keypoints, joint_names=formats.H36M_JOINT_NAMES,
                                  source=str(src.path or "camera"))
  print(gaps.describe_filled(mask))
  summary.facts += [f"{src.path.name if src.path else 'camera'}: {t} frames, "
                    f"{clip.size[0]}x{clip.size[1]}, {clip.fps:g} fps",
                    f"person found in {int(people.sum())}/{t} frames "
                    f"({100 * people.mean():.1f} %)",
                    gaps.describe_filled(mask).split(":")[0]]
  return filled, mask


def lift_clip(opts, lifter, clip: Clip, filled, summary: Summary) -> np.ndarray:
  from tqdm import tqdm
  t = len(filled)
  note = f"model {lifter.variant}, F={lifter.num_frames}, JIT compilation included"
  with summary.stage("lift", t, note), tqdm(total=t, desc="lift", unit="frame",
                                             disable=opts.no_progress) as bar:
    return lifter(filled, clip.size, chunk_size=opts.chunk_size,
                  progress=lambda n: bar.update(n - bar.n))


def write(opts, out: Outputs, clip: Clip, poses, filled, mask, summary: Summary) -> None:
  """Every planned output, under temporary names (`Outputs.commit` renames them)."""
  from poseformer_jax.video import render
  p = out.paths
  meta = dict(fps=clip.fps, image_size=clip.size, first_frame=clip.first_frame)
  with summary.stage("export"):
    export.save_npz(out.tmp("output"), poses, filled, mask, **meta)
    if "json" in p:
      export.save_json(out.tmp("json"), poses, filled, mask, **meta)
    if "bvh" in p:
      export.write_bvh(out.tmp("bvh"), poses, clip.fps)
    if "save_keypoints" in p and clip.detections is not None:
      d = clip.detections
      formats.save_keypoints(out.tmp("save_keypoints"), d["keypoints"], d["scores"],
                             d["detected"], width=clip.size[0], height=clip.size[1],
                             fps=clip.fps, layout=d["layout"])
  videos = [out.tmp(k) for k in ("render", "gif") if k in p]
  if videos:
    with summary.stage("render", len(poses)):
      render.render_video(clip.video, filled, poses, videos, clip.fps, image_size=clip.size,
                          filled=mask, progress=not opts.no_progress,
                          first_frame=clip.first_frame)
  if "contact_sheet" in p:
    with summary.stage("render"):
      render.contact_sheet(clip.video, filled, poses, out.tmp("contact_sheet"),
                           image_size=clip.size, filled=mask, first_frame=clip.first_frame)
  if "html" in p:  # the viewer page of the npz just written
    from poseformer_jax import view
    with summary.stage("html"):
      view.write_html(out.tmp("html"), out.tmp("output"), video=clip.video,
                      title=f"{p['output'].stem} (3D poses)", progress=not opts.no_progress)
