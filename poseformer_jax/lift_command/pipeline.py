"""The lifting command, stage by stage: detect (or read) -> fill -> lift -> render, export.

`run(opts)` is ``poseformer-jax lift`` (options from `poseformer_jax.lift_command.main.parse`).
Every output is checked before any work (suffix, folder, no silent overwrite,
`poseformer_jax.cli.Outputs`), written under a temporary name and renamed into
place only when all stages succeeded, so a failure leaves nothing half-done.
Each stage shows a progress bar and is timed; the summary at the end gives
frames, detection rate, filled gaps and frames/s per stage. Inputs are read by
`poseformer_jax.lift_command.inputs`; online lifting (``--stream``, ``--webcam``) is
`poseformer_jax.lift_command.online`; several people (track ids) are lifted track by
track (`run_tracks`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from poseformer_jax import gaps, view
from poseformer_jax.cli import Outputs
from poseformer_jax.errors import DataError
from poseformer_jax.lifter import Lifter
from poseformer_jax.lift_command import inputs, online
from poseformer_jax.lift_command.inputs import Clip, Source
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.video import export, formats, render, tracks

SUFFIXES = {"output": (".npz",), "json": (".json",), "bvh": (".bvh",),
            "save_keypoints": (".npz",), "render": (".mp4", ".gif"), "gif": (".gif",),
            "contact_sheet": (".png",), "html": (".html",)}


def plan_outputs(opts, src: Source) -> Outputs:
  """Outputs with their defaults (see `poseformer_jax.lift_command.main.USAGE`), checked."""
  out = Outputs(opts.overwrite, SUFFIXES)
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
  src = inputs.source(opts)
  summary = Summary()
  if src.kind == "keypoints" and opts.track is None:
    found = inputs.read_tracks(opts, src)
    if found is not None:
      return run_tracks(opts, src, found, summary)
  out = plan_outputs(opts, src)
  try:
    if opts.stream or src.kind == "camera":
      lifter = load_lifter(opts)
      clip, poses, filled, mask = online.run_stream(opts, src, lifter, summary)
    else:  # cheap checks first: a keypoint file before the checkpoint, that before detection
      clip = inputs.read_clip(opts, src) if src.kind == "keypoints" else None
      lifter = load_lifter(opts)
      clip = clip or inputs.read_video(opts, src, summary)
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


def load_lifter(opts) -> Lifter:
  """The checkpoint of --checkpoint, loaded once for every person and clip."""
  return Lifter(opts.checkpoint, batch_size=opts.batch_size, flip=not opts.no_flip)


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
  t = len(filled)
  note = f"model {lifter.variant}, F={lifter.num_frames}, JIT compilation included"
  with summary.stage("lift", t, note), tqdm(total=t, desc="lift", unit="frame",
                                             disable=opts.no_progress) as bar:
    return lifter(filled, clip.size, chunk_size=opts.chunk_size,
                  progress=lambda n: bar.update(n - bar.n))


def write(opts, out: Outputs, clip: Clip, poses, filled, mask, summary: Summary) -> None:
  """Every planned output, under temporary names (`Outputs.commit` renames them)."""
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
    with summary.stage("html"):
      view.write_html(out.tmp("html"), out.tmp("output"), video=clip.video,
                      title=f"{p['output'].stem} (3D poses)", progress=not opts.no_progress)


# --- several people -----------------------------------------------------------------------------

def _plan_tracks(opts, src, keep) -> Outputs:
  for flag in ("render", "gif", "contact_sheet", "save_keypoints"):
    if getattr(opts, flag):
      raise DataError(f"--{flag.replace('_', '-')}: not for several people at once; pick "
                      f"one with --track ID (tracks: {', '.join(keep)})")
  if opts.stream:
    raise DataError(f"--stream lifts one person; pick one with --track ID (tracks: "
                    f"{', '.join(keep)})")
  out = Outputs(opts.overwrite, SUFFIXES)
  out.add("output", opts.output or f"{src.stem}_3d.npz")
  for flag in ("json", "html"):
    if getattr(opts, flag):
      out.add(flag, getattr(opts, flag))
  if opts.bvh:
    base = Path(opts.bvh)
    for i in keep:
      out.add(f"bvh_{i}", base.with_name(f"{base.stem}_track{i}{base.suffix}"), (".bvh",))
  return out


def run_tracks(opts, src: Source, found: dict, summary: Summary) -> int:
  """Every track of a multi-person file, gap-filled and lifted on its own; outputs by track."""
  ids = tracks.sort_ids(found)
  keep = [i for i in ids if len(found[i][0]) >= opts.min_track_frames]
  if not keep:
    longest = max(len(f) for f, _ in found.values())
    raise DataError(f"{src.path}: no track has {opts.min_track_frames} or more frames "
                    f"(longest: {longest}); lower --min-track-frames")
  out = _plan_tracks(opts, src, keep)
  size, fps = inputs.size_and_fps(opts, src, None, None)
  results = []
  try:
    lifter = load_lifter(opts)
    for i in keep:
      frames, kps = found[i]
      with summary.stage("fill", len(kps)):
        filled, mask = gaps.fill_gaps(kps, joint_names=formats.H36M_JOINT_NAMES,
                                      source=f"{src.path} track {i}")
      with summary.stage("lift", len(kps), f"model {lifter.variant}, JIT compilation included"):
        poses = lifter(filled, size, chunk_size=opts.chunk_size)
      results.append(dict(track=i, frames=frames, poses_3d=poses, keypoints_2d=filled,
                          filled=mask))
    with summary.stage("export"):
      tracks.save_npz(out.tmp("output"), results, fps=fps, image_size=size)
      if opts.json:
        tracks.save_json(out.tmp("json"), results, fps=fps, image_size=size)
      if opts.bvh:
        for r in results:
          export.write_bvh(out.tmp(f"bvh_{r['track']}"), r["poses_3d"], fps)
    if opts.html:
      view.write_html(out.tmp("html"), out.tmp("output"), title=f"{out.paths['output'].stem} "
                      "(3D poses)")
    written = out.commit()
  except BaseException:
    out.discard()
    raise
  dropped = [i for i in ids if i not in keep]
  summary.facts += [f"{src.path.name}: {len(ids)} tracks, image {size[0]}x{size[1]}, {fps:g} fps",
                    "lifted " + ", ".join(f"track {r['track']} ({len(r['frames'])} frames, "
                                          f"{int(r['filled'].any(-1).sum())} filled)"
                                          for r in results)]
  if dropped:
    summary.facts.append(f"skipped tracks shorter than {opts.min_track_frames} frames: "
                         f"{', '.join(dropped)}")
  print(summary.text())
  for path in written:
    print(f"wrote {path}")
  return 0
