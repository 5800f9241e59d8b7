"""The lifting command's other inputs: keypoint files, several people, online lifting.

* `read_clip` — one person from a keypoint file (or one ``--track`` of a
  multi-person file), with image size and fps from flags, file or video.
* `run_tracks` — a multi-person file (`poseformer_jax.video.tracks`): every
  track is gap-filled and lifted on its own; outputs keyed by track.
* `run_stream` — ``--stream`` / ``--webcam``: frames go one at a time through
  the detector (for a video or camera) and `poseformer_jax.stream.StreamingLifter`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video import detect, formats, gaps, pipeline, tracks


def read_tracks(opts, src) -> dict | None:
  """The tracks of a multi-person file with track ids; None for a one-person input."""
  found = tracks.read_tracks(src.path, src.fmt, min_score=opts.min_score)
  return None if found is None or None in found else found


def read_clip(opts, src) -> pipeline.Clip:
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
  size, fps = _size_and_fps(opts, src, size, fps)
  print(f"read {kps.shape[0]} frames ({src.fmt}) from {src.path}; image {size[0]}x{size[1]}, "
        f"{fps:g} fps")
  return pipeline.Clip(kps, size, fps, video=Path(opts.video) if opts.video else None,
                       first_frame=first)


def _size_and_fps(opts, src, size, fps):
  from poseformer_jax.lift import check_image_size
  video = None
  if opts.video is not None:
    from poseformer_jax.video import render
    video = render.video_info(opts.video)
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


# --- several people -----------------------------------------------------------------------------

def _plan_tracks(opts, src, keep) -> pipeline.Outputs:
  for flag in ("render", "gif", "contact_sheet", "save_keypoints"):
    if getattr(opts, flag):
      raise DataError(f"--{flag.replace('_', '-')}: not for several people at once; pick "
                      f"one with --track ID (tracks: {', '.join(keep)})")
  if opts.stream:
    raise DataError(f"--stream lifts one person; pick one with --track ID (tracks: "
                    f"{', '.join(keep)})")
  out = pipeline.Outputs(opts.overwrite)
  out.add("output", opts.output or f"{src.stem}_3d.npz")
  for flag in ("json", "html"):
    if getattr(opts, flag):
      out.add(flag, getattr(opts, flag))
  if opts.bvh:
    base = Path(opts.bvh)
    for i in keep:
      out.add(f"bvh_{i}", base.with_name(f"{base.stem}_track{i}{base.suffix}"), (".bvh",))
  return out


def run_tracks(opts, src, found: dict, summary: pipeline.Summary) -> int:
  ids = tracks.sort_ids(found)
  keep = [i for i in ids if len(found[i][0]) >= opts.min_track_frames]
  if not keep:
    longest = max(len(f) for f, _ in found.values())
    raise DataError(f"{src.path}: no track has {opts.min_track_frames} or more frames "
                    f"(longest: {longest}); lower --min-track-frames")
  out = _plan_tracks(opts, src, keep)
  size, fps = _size_and_fps(opts, src, None, None)
  results = []
  try:
    lifter = pipeline.load_lifter(opts)
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
        from poseformer_jax.video import export
        for r in results:
          export.write_bvh(out.tmp(f"bvh_{r['track']}"), r["poses_3d"], fps)
    if opts.html:
      from poseformer_jax import view
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


# --- online lifting -----------------------------------------------------------------------------

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


def run_stream(opts, src, lifter, summary: pipeline.Summary):
  """Frames one at a time through `StreamingLifter` -> (clip, poses, filled, mask)."""
  from tqdm import tqdm

  from poseformer_jax.stream import StreamingLifter
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
  clip = pipeline.Clip(filled, tuple(info["size"]), float(fps), video=video,
                       detections=detections, first_frame=stream.first_frame)
  found = (detections["detected"] if detections is not None
           else ~np.isnan(info["clip"].keypoints).all(-1).all(-1))
  summary.facts += [f"{Path(name).name}: {n} frames, {clip.size[0]}x{clip.size[1]}, "
                    f"{clip.fps:g} fps", f"person found in {int(found.sum())}/{n} frames",
                    f"online: {stream.first_frame} leading frames skipped, "
                    f"{int(mask.any(-1).sum())} frames with held joints"]
  return clip, np.stack(poses).astype(np.float32), filled, mask
