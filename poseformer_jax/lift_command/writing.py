"""The lifting command's outputs: planned before any work (`plan_outputs`), written at the end.

A result is one person's dict of per-frame arrays (``frames``, ``poses_3d``,
``keypoints_2d``, ``filled``, ``low_confidence``, any further array such as a
root trajectory) and its ``track`` id. One person's results go to
`poseformer_jax.video.export` (npz, JSON), `poseformer_jax.video.bvh` and
`poseformer_jax.video.render`; several people's, keyed by track, to
`poseformer_jax.video.tracks` (npz, JSON) and one BVH per track. Every file is
written under a temporary name (`poseformer_jax.cli.Outputs`).
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from poseformer_jax import view
from poseformer_jax.cli import Outputs
from poseformer_jax.errors import DataError
from poseformer_jax.lift_command.inputs import Clip, Source
from poseformer_jax.lift_command.summary import Summary
from poseformer_jax.video import bvh, export, formats, render, tracks

SUFFIXES = {"output": (".npz",), "json": (".json",), "bvh": (".bvh",),
            "save_keypoints": (".json",), "render": (".mp4", ".gif"), "gif": (".gif",),
            "contact_sheet": (".png",), "html": (".html",)}
_NOT_ARRAYS = ("track", "frames")


def plan_outputs(opts, src: Source) -> Outputs:
  """Outputs with their defaults (see `poseformer_jax.lift_command.main.USAGE`), checked."""
  out = Outputs(opts.overwrite, SUFFIXES)
  detected = src.kind in ("video", "camera")
  if opts.save_keypoints and not detected:
    raise DataError("--save-keypoints is for detections (a video or --webcam input)")
  # Detections: every person's as a records file (what `--person all` reads back); online
  # lifting follows one person and writes the one-person keypoint npz.
  online = opts.stream or src.kind == "camera"
  kind = ".npz" if online else ".json"
  if detected:
    named = opts.output or opts.render
    prefix = Path(named).with_suffix("") if named else Path(f"{src.stem}_3d")
    defaults = {"output": f"{prefix}.npz", "json": f"{prefix}.json", "bvh": f"{prefix}.bvh",
                "save_keypoints": prefix.parent / f"{src.stem}_mediapipe33{kind}"}
  else:
    defaults = {"output": f"{src.stem}_3d.npz"}
  for flag in SUFFIXES:
    value = getattr(opts, flag) or defaults.get(flag)
    if value:
      out.add(flag, value, (kind,) if flag == "save_keypoints" else None)
  return out


def plan_people(opts, out: Outputs, clip: Clip) -> None:
  """Outputs that depend on who was found: one BVH per track (``NAME_track<id>.bvh``)."""
  if not clip.tracked:
    return
  ids = [p.id for p in clip.people]
  if "bvh" in out.paths:
    base = out.paths.pop("bvh")
    for i in ids:
      out.add(f"bvh_{i}", base.with_name(f"{base.stem}_track{i}{base.suffix}"), (".bvh",))


def arrays(result: dict) -> dict:
  """The per-frame arrays of a result (all but its track id and frame numbers)."""
  return {k: v for k, v in result.items() if k not in _NOT_ARRAYS}


def _placed(result: dict):
  """The poses a BVH animates: camera-frame joints when the result has a root trajectory
  (the root then moves), else the root-relative poses."""
  return result.get("poses_3d_camera", result["poses_3d"])


def write(opts, out: Outputs, clip: Clip, results: list[dict], summary: Summary, *,
          renderer=None) -> None:
  """Every planned output, under temporary names (`Outputs.commit` renames them). With a
  `renderer` (`poseformer_jax.video.render_worker.RenderWorker`) the side-by-side video is
  drawn in its process while the other files are written."""
  p = out.paths
  meta = dict(fps=clip.fps, image_size=clip.size)
  videos = [out.tmp(k) for k in ("render", "gif") if k in p]
  if videos and renderer is not None:
    renderer.start(clip.video, results, videos, clip.fps, image_size=clip.size)
  with summary.stage("export"):
    if clip.tracked:
      tracks.save_npz(out.tmp("output"), results, **meta)
      if "json" in p:
        tracks.save_json(out.tmp("json"), results, **meta)
      for r in results:
        if f"bvh_{r['track']}" in p:
          bvh.write_bvh(out.tmp(f"bvh_{r['track']}"), _placed(r), clip.fps)
    else:
      r = results[0]
      first = int(r["frames"][0])
      export.save_npz(out.tmp("output"), **arrays(r), **meta, first_frame=first)
      if "json" in p:
        export.save_json(out.tmp("json"), **arrays(r), **meta, first_frame=first)
      if "bvh" in p:
        bvh.write_bvh(out.tmp("bvh"), _placed(r), clip.fps)
    if "save_keypoints" in p and clip.detections is not None:
      _save_detections(out.tmp("save_keypoints"), clip)
  if "contact_sheet" in p:
    with summary.stage("sheet"):
      render.people_contact_sheet(clip.video, results, out.tmp("contact_sheet"),
                                  image_size=clip.size)
  if "html" in p:  # the viewer page of the npz just written
    with summary.stage("html"):
      view.write_html(out.tmp("html"), out.tmp("output"), video=clip.video,
                      title=f"{p['output'].stem} (3D poses)", progress=not opts.no_progress)
  if videos:
    _render(opts, videos, clip, results, summary, renderer)
  if clip.tracked:
    summary.facts.append("lifted " + ", ".join(
        f"track {r['track']} ({len(r['frames'])} frames, {int(r['filled'].any(-1).sum())} "
        "filled)" for r in results))


def _save_detections(path: Path, clip: Clip) -> None:
  d = clip.detections
  if "tracks" in d:  # every person: a records file
    tracks.save_records(path, d["tracks"], width=clip.size[0], height=clip.size[1],
                        fps=clip.fps, layout=d["layout"])
  else:
    formats.save_keypoints(path, d["keypoints"], d["scores"], d["detected"],
                           width=clip.size[0], height=clip.size[1], fps=clip.fps,
                           layout=d["layout"])


def _render(opts, videos: list[Path], clip: Clip, results: list[dict], summary: Summary,
            renderer) -> None:
  """Everybody in one video: `render.render_people`, here or in `renderer`'s process."""
  frames = len({int(f) for r in results for f in r["frames"]})
  if renderer is None:
    with summary.stage("render", frames):
      render.render_people(clip.video, results, videos, clip.fps, image_size=clip.size,
                           progress=not opts.no_progress)
    return
  with tqdm(total=frames, desc="render", unit="frame", disable=opts.no_progress) as bar:
    busy = renderer.finish(lambda n: bar.update(n - bar.n))
  summary.add("render", frames, busy, "own process, beside the other outputs")
