"""The lifting command, stage by stage: detect (or read) -> select -> fill -> lift -> write.

`run(opts)` is ``poseformer-jax lift`` (options from `poseformer_jax.lift_command.main.parse`).
Every output is checked before any work (suffix, folder, no silent overwrite,
`poseformer_jax.cli.Outputs`), written under a temporary name and renamed into
place only when all stages succeeded, so a failure leaves nothing half-done.
Each stage shows a progress bar and is timed; the summary at the end gives
frames, people, filled gaps and frames/s per stage.

Every person of the input (`inputs.Clip`) is filled and lifted on its own: a
joint that is never confident takes the detector's low-confidence estimate
(`poseformer_jax.gaps.use_estimates`; one warning line names them), gaps are
interpolated along time, and the filled (T, 17, 2) pixels go through the
`Lifter`. Outputs are one person's or keyed by track (`writing`). Online
lifting (``--stream``, ``--webcam``) is `online`.

A video's stages overlap (`run_overlapped`, `overlap`): people are lifted while the video
is still detected, and the side-by-side video is drawn in a process of its own while the
other files are written. ``--sequential`` runs them one after the other
(`run_sequential`) and writes the same files.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from poseformer_jax import gaps
from poseformer_jax import trajectory
from poseformer_jax.cli import Outputs
from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError
from poseformer_jax.lift_command import inputs, online, overlap, writing
from poseformer_jax.lift_command.inputs import Clip, Person, Source
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.lifter import Lifter
from poseformer_jax.video import formats, people
from poseformer_jax.video.render_worker import RenderWorker


def run(opts) -> int:
  src = inputs.source(opts)
  summary = Summary()
  out = writing.plan_outputs(opts, src)
  worker = None
  try:
    try:
      if opts.stream or src.kind == "camera":
        results, clip = online.run_stream(opts, src, load_lifter(opts), summary)
      elif src.kind == "video" and not opts.sequential:
        if any(k in out.paths for k in ("render", "gif")):
          worker = RenderWorker()  # its interpreter starts while the rest runs
        results, clip = run_overlapped(opts, src, out, summary)
      else:
        results, clip = run_sequential(opts, src, out, summary)
      if all("root_3d" in r for r in results):
        in_space(opts, results, summary)
      writing.write(opts, out, clip, results, summary, renderer=worker)
    finally:
      if worker is not None:
        worker.close()
    written = out.commit()
  except BaseException:
    out.discard()
    raise
  print(summary.text())
  for path in written:
    print(f"wrote {path}")
  return 0


def run_sequential(opts, src: Source, out, summary: Summary) -> tuple[list[dict], Clip]:
  """The stages one after the other: read or detect, select, fill, lift, place."""
  # Cheap checks first: a keypoint file before the checkpoint, that before detection.
  clip = inputs.read_file(opts, src) if src.kind == "keypoints" else None
  lifter = load_lifter(opts)
  clip = clip or inputs.read_video(opts, src, summary)
  clip = choose(opts, src, clip, summary)
  writing.plan_people(opts, out, clip)
  results = [fill(p, clip, summary) for p in clip.people]
  warn_fallbacks(opts, clip, results)
  focal = inputs.focal_px(opts, clip.size) if lifter.has_trajectory else None
  for r in results:
    r["poses_3d"] = lift_person(opts, lifter, clip, r, summary)
    if focal is not None:
      r["root_3d"] = place_person(opts, lifter, clip, r, summary, focal)
  return results, clip


def run_overlapped(opts, src: Source, out, summary: Summary) -> tuple[list[dict], Clip]:
  """A video's people lifted while it is detected (`overlap`); then the sequential steps."""
  size = inputs.video_size(opts, src)
  lifter = load_lifter(opts)
  focal = inputs.focal_px(opts, size) if lifter.has_trajectory else None
  early = overlap.EarlyLift(opts, lifter, size, focal, chunk_of(opts, video=True),
                            people.PeopleDetector.layout)
  try:
    clip = inputs.read_video(opts, src, summary, on_frame=early.add)
    early.wait()
    during = early.frames
    clip = choose(opts, src, clip, summary)
    writing.plan_people(opts, out, clip)
    results = [fill(p, clip, summary) for p in clip.people]
    warn_fallbacks(opts, clip, results)
    start = time.perf_counter()
    for r in results:
      r.update(early.take(r))
  finally:
    early.close()
  frames = sum(len(r["frames"]) for r in results)
  summary.add("lift", frames, early.seconds + time.perf_counter() - start,
              f"model {lifter.variant}, F={lifter.num_frames}"
              + (", and root trajectory" if focal else "")
              + f", JIT compilation included; {during} frames during detection")
  return results, clip


def chunk_of(opts, video: bool) -> int | None:
  """Frames per lifted chunk: --chunk-size, else for a video `overlap.VIDEO_CHUNK` (both
  paths lift a video in the same chunks: the same values), else the whole clip."""
  return opts.chunk_size or (overlap.VIDEO_CHUNK if video else None)


def load_lifter(opts) -> Lifter:
  """The checkpoint of --checkpoint (and its trajectory model unless --no-trajectory),
  loaded once for every person and clip."""
  return Lifter(opts.checkpoint, batch_size=opts.batch_size, flip=not opts.no_flip,
                trajectory=not opts.no_trajectory)


def in_space(opts, results: list[dict], summary: Summary) -> None:
  """Each result's camera-frame joints ``poses_3d_camera`` = pose + root; with --height
  the person's roots and poses scaled from the model's reference height."""
  for r in results:
    if opts.height is not None:
      k = opts.height / trajectory.REFERENCE_HEIGHT_M
      r["root_3d"] = r["root_3d"] * k
      r["poses_3d"] = r["poses_3d"] * k
    r["poses_3d_camera"] = (r["poses_3d"] - r["poses_3d"][:, :1]
                            + r["root_3d"][:, None]).astype(np.float32)
  depth = np.concatenate([r["root_3d"][:, 2] for r in results])
  summary.facts.append(f"root trajectory: depth {depth.min():.2f}-{depth.max():.2f} m"
                       + (f" (person {opts.height:g} m tall)" if opts.height else
                          f" (a person {trajectory.REFERENCE_HEIGHT_M:g} m tall; --height "
                          "for another)"))


def place_person(opts, lifter: Lifter, clip: Clip, result: dict, summary: Summary,
                 focal: float) -> np.ndarray:
  """(N, 3) camera-frame roots of one person's filled keypoints (stage "trajectory")."""
  with summary.stage("trajectory", len(result["keypoints_2d"])):
    return lifter.roots(result["keypoints_2d"], clip.size, focal_px=focal,
                        chunk_size=chunk_of(opts, clip.detections is not None))


def choose(opts, src: Source, clip: Clip, summary: Summary) -> Clip:
  """`inputs.select`, with the facts of the summary; no person at all is an error."""
  found = [p for p in clip.people if p.found().any()]
  if not found:
    frames = max((int(p.frames[-1]) + 1 for p in clip.people), default=0)
    what = "video" if src.kind == "video" else "file"
    raise DataError(f"{src.path}: no person in any of the {frames} frames of the {what}")
  before = [p.id for p in found]
  clip = inputs.select(opts, replace(clip, people=found), str(src.path))
  summary.facts.append(f"{src.path.name}: image {clip.size[0]}x{clip.size[1]}, {clip.fps:g} fps")
  if clip.tracked:
    dropped = [i for i in before if i not in {p.id for p in clip.people}]
    summary.facts.append(f"{len(before)} tracks" + (
        f"; skipped tracks shorter than {opts.min_track_frames} frames: {', '.join(dropped)}"
        if dropped else ""))
  else:
    p = clip.people[0]
    n = int(p.found().sum())
    who = "person" if p.id is None else f"track {p.id}"
    summary.facts.append(f"{who} found in {n}/{len(p.frames)} frames "
                         f"({100 * n / len(p.frames):.1f} %)")
  return clip


def fill(p: Person, clip: Clip, summary: Summary) -> dict:
  """One person's filled 2D input: ``frames``, ``keypoints_2d`` (N, 17, 2) pixels without
  NaN, ``filled`` (N, 17) bool (interpolated), ``low_confidence`` (N, 17) bool."""
  kps, low = p.keypoints, np.zeros(p.keypoints.shape[:2], bool)
  if p.estimates is not None:
    kps, low = gaps.use_estimates(kps, p.estimates)
  where = f"track {p.id}" if p.id is not None else str(clip.video or "keypoints")
  with summary.stage("fill", len(kps)):
    filled, mask = gaps.fill_gaps(kps, parents=skeleton.PARENTS,
                                  joint_names=skeleton.JOINT_NAMES, source=where)
  text = gaps.describe_filled(mask)
  print(text if p.id is None else f"track {p.id}: {text}")
  if p.id is None:
    summary.facts.append(text.split(":")[0])
  return dict(track=p.id, frames=p.frames, keypoints_2d=filled, filled=mask, low_confidence=low)


def warn_fallbacks(opts, clip: Clip, results: list[dict]) -> None:
  """One warning line (stderr) naming the joints lifted from low-confidence estimates, and
  those placed on a neighbour because no position of them was found."""
  low, placed = [], []
  for r in results:
    who = "" if r["track"] is None else f"track {r['track']}: "
    names = [skeleton.JOINT_NAMES[j] for j in np.flatnonzero(r["low_confidence"].any(0))]
    if names:
      low.append(who + ", ".join(names))
    never = r["filled"].all(0) & ~r["low_confidence"].any(0)
    names = [skeleton.JOINT_NAMES[j] for j in np.flatnonzero(never)]
    if names:
      placed.append(who + ", ".join(names))
  threshold = opts.min_score if opts.min_score is not None else formats.DEFAULT_MIN_SCORE[
      clip.layout]
  parts = []
  if low:
    parts.append(f"never above the confidence threshold {threshold:g}, lifted from the "
                 f"detector's low-confidence estimates (marked low_confidence): {'; '.join(low)}")
  if placed:
    parts.append(f"never found, placed on the nearest joint (marked filled): "
                 f"{'; '.join(placed)}")
  if parts:
    print("warning: " + "; and ".join(parts), file=sys.stderr)


def lift_person(opts, lifter: Lifter, clip: Clip, result: dict, summary: Summary) -> np.ndarray:
  """(N, 17, 3) poses of one person's filled keypoints (timed as the stage "lift")."""
  kps = result["keypoints_2d"]
  t = len(kps)
  note = f"model {lifter.variant}, F={lifter.num_frames}, JIT compilation included"
  desc = "lift" if result["track"] is None else f"lift track {result['track']}"
  with summary.stage("lift", t, note), tqdm(total=t, desc=desc, unit="frame",
                                             disable=opts.no_progress) as bar:
    return lifter(kps, clip.size, chunk_size=chunk_of(opts, clip.detections is not None),
                  progress=lambda n: bar.update(n - bar.n))
