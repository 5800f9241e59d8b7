"""Rendering lifted poses: side-by-side video (mp4 / gif) and a PNG contact sheet.

Each output frame is drawn by `poseformer_jax.video.figure.PoseRenderer`: the
input video frame (or a blank canvas of the image size) with every person's 2D
skeleton, beside their 3D skeletons. Several people (tracks) are drawn
together: the video runs from the first track's first frame to the last one's
last, each person is labelled with their track id, and their 3D skeletons
(root-relative, as lifted) stand in a row, a metre apart, in the order they
stand in the image from left to right (`offsets`; where people really are is
in the 2D panel: their depth is not known), unless results give their root position
(``root_3d``, camera space): then they move through the scene over the floor under
their feet, with their roots' trails (`scene_of`).

Videos are decoded (directly at the panel's size) and encoded by
`poseformer_jax.video.ffmpeg`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.video import ffmpeg
from poseformer_jax.video.figure import Drawn, PoseRenderer
from poseformer_jax.video.scene import Scene

SPACING = 1.0  # metres between the roots of people drawn side by side (`offsets`)


def _check_inputs(keypoints_2d, poses_3d, filled, low_confidence=None):
  kps = np.asarray(keypoints_2d, np.float64)
  poses = np.asarray(poses_3d, np.float64)
  if kps.ndim != 3 or kps.shape[1:] != (17, 2):
    raise DataError(f"keypoints_2d must be (T, 17, 2), got {kps.shape}")
  if poses.shape != kps.shape[:1] + (17, 3):
    raise DataError(f"poses_3d must be ({kps.shape[0]}, 17, 3), got {poses.shape}")
  mask = np.zeros(kps.shape[:2], bool) if filled is None else np.asarray(filled, bool)
  low = np.zeros(kps.shape[:2], bool) if low_confidence is None else np.asarray(
      low_confidence, bool)
  if mask.shape != kps.shape[:2] or low.shape != kps.shape[:2]:
    raise DataError(f"filled and low_confidence must be {kps.shape[:2]}, got {mask.shape} and "
                    f"{low.shape}")
  return kps, poses, mask, low


def offsets(people: Sequence[dict]) -> list[np.ndarray]:
  """Per person, (N, 3) camera-space metres where their root is drawn: ``root_3d`` when the
  result has one; else 0 for one person, and for several a place in a row, `SPACING`
  apart, in the order of their median image column (see the module doc)."""
  columns = [float(np.median(np.asarray(p["keypoints_2d"])[:, 0, 0])) for p in people]
  rank = {k: r for r, k in enumerate(np.argsort(columns, kind="stable"))}
  out = []
  for k, p in enumerate(people):
    if p.get("root_3d") is not None:
      out.append(np.asarray(p["root_3d"], np.float64))
    else:
      x = (rank[k] - (len(people) - 1) / 2) * SPACING
      out.append(np.tile([x, 0.0, 0.0], (len(p["frames"]), 1)))
  return out


def _drawn(people: Sequence[dict]) -> tuple[int, list[list[Drawn]], list[str], float]:
  """(first video frame, per frame the people to draw, per frame its caption, the 3D
  extent the offsets add) of `render_people`'s input."""
  checked = []
  for p in people:
    kps, poses, mask, low = _check_inputs(p["keypoints_2d"], p["poses_3d"], p.get("filled"),
                                          p.get("low_confidence"))
    frames = np.asarray(p["frames"], np.int64)
    if frames.shape != (len(kps),) or (len(frames) > 1 and (np.diff(frames) != 1).any()):
      raise DataError(f"frames must be {len(kps)} consecutive frame numbers")
    checked.append((frames, kps, poses, mask, low, p.get("track")))
  first = min(int(c[0][0]) for c in checked)
  t = max(int(c[0][-1]) for c in checked) - first + 1
  where = offsets(people)
  moving = all(p.get("root_3d") is not None for p in people)
  frames: list[list[Drawn]] = [[] for _ in range(t)]
  for (f, kps, poses, mask, low, track), off in zip(checked, where):
    label = "" if track is None or len(people) == 1 else str(track)
    for k in range(len(f)):
      frames[f[k] - first].append(Drawn(kps[k], poses[k], mask[k], low[k], off[k], label,
                                        off[:k + 1] if moving else None))
  if len(checked) == 1:
    mask, low = checked[0][3], checked[0][4]
    captions = [_label(i, t, mask[i], low[i]) for i in range(t)]
  else:
    captions = [f"frame {i + 1}/{t}  ({len(d)} {'person' if len(d) == 1 else 'people'})"
                for i, d in enumerate(frames)]
  extent = max((float(np.abs(o[:, 0]).max()) for o in where if len(o)), default=0.0)
  return first, frames, captions, extent


def _label(i: int, t: int, mask_row: np.ndarray, low_row: np.ndarray) -> str:
  notes = [f"{n} {what}" for n, what in ((int(mask_row.sum()), "joints interpolated"),
                                          (int(low_row.sum()), "low-confidence")) if n]
  return f"frame {i + 1}/{t}" + (f"  ({', '.join(notes)})" if notes else "")


def scene_of(people: Sequence[dict]) -> Scene | None:
  """With every person's ``root_3d``: the `scene.Scene` of their camera-frame joints."""
  if not people or any(p.get("root_3d") is None for p in people):
    return None
  joints = [np.asarray(p["poses_3d"], np.float64) - np.asarray(p["poses_3d"])[:, :1]
            + np.asarray(p["root_3d"], np.float64)[:, None] for p in people]
  return Scene.fit(np.concatenate(joints))


def _renderer(video_path, people, image_size, height: int, view: dict):
  """(renderer, image size, first frame, per-frame people, captions) for `people`."""
  if not people:
    raise DataError("nothing to render: no people")
  if image_size is None:
    if video_path is None:
      raise DataError("rendering needs image_size when no video is given")
    image_size = ffmpeg.video_info(video_path)["size"]
  first, frames, captions, extent = _drawn(people)
  view = dict(view)
  scene = scene_of(people)
  if scene is None:
    view["radius"] = view.get("radius", 1.0) + extent
  renderer = PoseRenderer(image_size, people=max(len(d) for d in frames), height=height,
                          scene=scene, **view)
  return renderer, image_size, first, frames, captions


# --- outputs ------------------------------------------------------------------------------------

def render_people(video_path: str | os.PathLike | None, people: Sequence[dict],
                  out_path: str | os.PathLike | Sequence[str | os.PathLike], fps: float, *,
                  image_size: Sequence[int] | None = None, height: int = 480,
                  gif_scale: float = 0.5, progress=True, **view) -> list[Path]:
  """Renders the side-by-side video of one person or several (see the module doc).

  Args:
    video_path: the input video, or None for a blank canvas of `image_size`.
    people: one dict per person: ``frames`` (N,) consecutive video frames,
      ``keypoints_2d`` (N, 17, 2) H36M-17 pixels (gap-filled), ``poses_3d``
      (N, 17, 3) lifted poses, and optionally ``filled`` / ``low_confidence``
      (N, 17) bool (joints drawn hollow / pale), ``track`` (the id drawn by the
      head when there are several) and ``root_3d`` (N, 3) camera-space metres.
    out_path: one path or several; ``.mp4`` (H.264, yuv420p) and/or ``.gif``
      (every frame, scaled by `gif_scale`). All outputs are made in one pass.
    fps: output frame rate.
    image_size: (w, h) of the keypoints' pixel space; default the video's size.
    height: output height in pixels; `view`: elev, azim, radius (see `PoseRenderer`).
    progress: a progress bar (bool), or a callback with the number of frames done.
  Returns:
    The written paths.
  """
  paths = ([Path(out_path)] if isinstance(out_path, (str, os.PathLike))
           else [Path(p) for p in out_path])
  for p in paths:
    if p.suffix.lower() not in (".mp4", ".gif"):
      raise DataError(f"{p}: unsupported video output; use .mp4 or .gif")
  if not fps or fps <= 0:
    raise DataError(f"fps must be positive, got {fps}")
  renderer, image_size, first, frames, captions = _renderer(video_path, people, image_size,
                                                            height, view)
  t = len(frames)
  writers = []
  try:
    with ffmpeg.quiet():
      for p in paths:
        writers.append(ffmpeg.open_writer(p, (renderer.width, renderer.height), float(fps),
                                          gif_scale, rgba=True))
    video = ffmpeg.frames_at(video_path, t, renderer.frame_size, image_size, first, rgba=True)
    for i, frame in enumerate(tqdm(video, total=t, desc="render", unit="frame",
                                   disable=callable(progress) or not progress)):
      img = renderer.draw_rgba(frame, frames[i], captions[i])
      for w in writers:
        w.send(img)
      if callable(progress):
        progress(i + 1)
  finally:
    for w in writers:
      w.close()
    renderer.close()
  return paths


def render_video(video_path: str | os.PathLike | None, keypoints_2d_px, poses_3d,
                 out_path: str | os.PathLike | Sequence[str | os.PathLike], fps: float, *,
                 filled=None, low_confidence=None, first_frame: int = 0, **kwargs) -> list[Path]:
  """`render_people` of one person: keypoints_2d_px (T, 17, 2) pixels, poses_3d (T, 17, 3),
  filled / low_confidence (T, 17) bool or None, from video frame `first_frame` on."""
  return render_people(video_path, [_one(keypoints_2d_px, poses_3d, filled, low_confidence,
                                         first_frame)], out_path, fps, **kwargs)


def _one(keypoints_2d, poses_3d, filled, low_confidence, first_frame: int) -> dict:
  kps, poses, mask, low = _check_inputs(keypoints_2d, poses_3d, filled, low_confidence)
  return dict(frames=first_frame + np.arange(len(kps)), keypoints_2d=kps, poses_3d=poses,
              filled=mask, low_confidence=low)


def people_contact_sheet(video_path: str | os.PathLike | None, people: Sequence[dict],
                         out_path: str | os.PathLike, *, image_size: Sequence[int] | None = None,
                         num_frames: int = 6, columns: int = 2, height: int = 320,
                         **view) -> Path:
  """A PNG grid of `num_frames` evenly spaced side-by-side frames (first and last included)
  of one person or several (`people` as for `render_people`)."""
  import imageio.v3 as iio3

  out_path = Path(out_path)
  if out_path.suffix.lower() != ".png":
    raise DataError(f"{out_path}: contact sheet must be a .png")
  renderer, image_size, first, frames, captions = _renderer(video_path, people, image_size,
                                                            height, view)
  t = len(frames)
  picks = np.unique(np.linspace(0, t - 1, min(num_frames, t)).round().astype(int))
  tiles = []
  try:
    for i, frame in enumerate(ffmpeg.frames_at(video_path, t, renderer.frame_size, image_size,
                                            first)):
      if i in picks:
        tiles.append(renderer.draw_people(frame, frames[i], captions[i]))
  finally:
    renderer.close()
  rows = -(-len(tiles) // columns)
  th, tw = tiles[0].shape[:2]
  gap = 4
  sheet = np.full((rows * th + (rows - 1) * gap, columns * tw + (columns - 1) * gap, 3), 255,
                  np.uint8)
  for k, tile in enumerate(tiles):
    r, c = divmod(k, columns)
    sheet[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tile
  iio3.imwrite(out_path, sheet)
  return out_path


def contact_sheet(video_path: str | os.PathLike | None, keypoints_2d_px, poses_3d,
                  out_path: str | os.PathLike, *, filled=None, low_confidence=None,
                  first_frame: int = 0, **kwargs) -> Path:
  """`people_contact_sheet` of one person (arguments as `render_video`)."""
  return people_contact_sheet(video_path, [_one(keypoints_2d_px, poses_3d, filled,
                                                low_confidence, first_frame)], out_path, **kwargs)
