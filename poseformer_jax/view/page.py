"""The viewer page: one self-contained HTML file (three.js, the app, the poses inline).

`build_html` turns a `Result` into the page's text; `save_page` writes it.
The page holds, in this order: the CSS, a JSON block with the poses (float32
little-endian arrays in base64, already in viewer space), three.js
(`assets/three.min.js`, a classic script defining ``THREE``) and the app
(`assets/viewer.js`). Nothing is fetched: it works from ``file://``.

Viewer space: metres, x right, y up, z towards the original camera, i.e.
camera space (x right, y down, z forward) turned 180 degrees about x:
``(x, y, z) -> (x, -y, -z)`` (`to_viewer`). A person lifted without a root
trajectory stands at the origin; several such tracks stand side by side
`TRACK_SPACING` metres apart, in track order.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

from poseformer_jax import __version__
from poseformer_jax.errors import DataError
from poseformer_jax.video.figure import BONES, CENTRE_COLOUR, LEFT_COLOUR, RIGHT_COLOUR
from poseformer_jax.video.formats import H36M_LEFT, H36M_RIGHT
from poseformer_jax.view.result import Result, Track

TRACK_SPACING = 1.2  # metres between people drawn in place
ASSETS = ("page.html", "viewer.css", "three.min.js", "viewer.js")
_DEFAULT_FPS = 25.0


def to_viewer(points) -> np.ndarray:
  """Camera space (..., 3) -> viewer space (x right, y up, z towards the camera)."""
  return np.asarray(points, np.float64) * np.array([1.0, -1.0, -1.0])


def colour(joint: int) -> str:
  """The mp4 renderer's colour of a joint and of the bone ending at it."""
  return LEFT_COLOUR if joint in H36M_LEFT else RIGHT_COLOUR if joint in H36M_RIGHT \
      else CENTRE_COLOUR


def placed_positions(result: Result) -> list[np.ndarray]:
  """Each track's (N, 17, 3) joints in viewer space as the page draws them: camera
  space when every track has a root trajectory, else root-relative and side by side."""
  moving = all(t.root_3d is not None for t in result.tracks)
  k = len(result.tracks)
  out = []
  for i, t in enumerate(result.tracks):
    if moving:
      out.append(to_viewer(t.positions))
    else:
      offset = np.array([(i - (k - 1) / 2) * TRACK_SPACING, 0.0, 0.0])
      out.append(to_viewer(t.poses_3d) + offset)
  return out


def _b64(array, dtype) -> str:
  return base64.b64encode(np.ascontiguousarray(array, dtype).tobytes()).decode("ascii")


def _scene(positions: list[np.ndarray]) -> dict:
  """Centre, radius (metres) and ground height of everything drawn."""
  allp = np.concatenate([p.reshape(-1, 3) for p in positions])
  lo, hi = allp.min(0), allp.max(0)
  centre = (lo + hi) / 2
  return {"centre": [round(float(v), 4) for v in centre],
          "radius": round(max(0.6, float(np.linalg.norm(hi - lo)) / 2), 4),
          "ground": round(float(lo[1]) - 0.01, 4)}


def _view2d(result: Result) -> list[float]:
  """The 2D panel's pixel rectangle [x0, y0, x1, y1]: the image, else the keypoints' box."""
  if result.image_size:
    return [0.0, 0.0, float(result.image_size[0]), float(result.image_size[1])]
  kps = [t.keypoints_2d.reshape(-1, 2) for t in result.tracks if t.keypoints_2d is not None]
  pts = np.concatenate(kps) if kps else np.zeros((0, 2))
  pts = pts[np.isfinite(pts).all(-1)]
  if not len(pts):
    return [0.0, 0.0, 1.0, 1.0]
  lo, hi = pts.min(0), pts.max(0)
  pad = 0.1 * max(float((hi - lo).max()), 1.0)
  return [float(lo[0] - pad), float(lo[1] - pad), float(hi[0] + pad), float(hi[1] + pad)]


def _track_payload(t: Track, pos: np.ndarray, start: int, trail: bool) -> dict:
  kps = None
  if t.keypoints_2d is not None:
    kps = _b64(t.keypoints_2d, "<f4")  # NaN (never seen) is skipped by the page
  filled = None if t.filled is None else _b64(t.filled, np.uint8)
  return {"id": t.id, "start": start, "count": len(t.frames), "trail": trail,
          "poses": _b64(pos, "<f4"), "kps": kps, "filled": filled}


def payload(result: Result, video_images: dict | None = None) -> dict:
  """The page's JSON data (see `assets/viewer.js`); `video_images` from
  `poseformer_jax.view.thumbnails.thumbnails`."""
  if not result.tracks:
    raise DataError(f"{result.name}: nothing to show (no tracks)")
  positions = placed_positions(result)
  moving = all(t.root_3d is not None for t in result.tracks)
  first = min(int(t.frames[0]) for t in result.tracks)
  last = max(int(t.frames[-1]) for t in result.tracks)
  fps = result.fps or _DEFAULT_FPS
  n_people = len(result.tracks)
  info = (f"{last - first + 1} frames, {f'{result.fps:g} fps' if result.fps else 'fps unknown'}"
          + (f", {n_people} people" if n_people > 1 else ""))
  notes = ("3D: metres, y up. " + (
      "Camera space with the root trajectory: the body moves, its pelvis trail is drawn on "
      "the ground." if moving else
      "Root-relative (no root trajectory): each person stands in place"
      + (f", side by side {TRACK_SPACING:g} m apart." if n_people > 1 else ".")))
  return {
      "info": info, "notes": notes, "fps": fps, "fpsKnown": result.fps is not None,
      "firstFrame": first, "count": last - first + 1,
      "imageSize": list(result.image_size) if result.image_size else None,
      "view2d": _view2d(result), "bones": [list(b) for b in BONES],
      "boneColours": [colour(c) for _, c in BONES], "jointColours": [colour(j) for j in range(17)],
      "scene": _scene(positions),
      "tracks": [_track_payload(t, p, int(t.frames[0]) - first, moving)
                 for t, p in zip(result.tracks, positions)],
      "video": video_images,
  }


def asset(name: str) -> str:
  """The text of a file in ``poseformer_jax/view/assets``."""
  return resources.files("poseformer_jax.view").joinpath("assets", name).read_text("utf-8")


def _script_safe(text: str, what: str) -> str:
  """Text placed inside a <script> element must not close it early."""
  if "</script" in text.lower() or "<!--" in text:
    raise DataError(f"{what} cannot be placed inline in a <script> element")
  return text


def build_html(result: Result, *, title: str | None = None, video_images: dict | None = None
               ) -> str:
  """The whole page as a string (see the module doc)."""
  data = json.dumps(payload(result, video_images), separators=(",", ":"), allow_nan=False)
  data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
  parts = {"__TITLE__": html.escape(title or f"{result.name} (3D poses)"),
           "__VERSION__": html.escape(__version__), "__CSS__": asset("viewer.css"),
           "__DATA__": data,
           "__THREE__": _script_safe(asset("three.min.js"), "three.min.js"),
           "__APP__": _script_safe(asset("viewer.js"), "viewer.js")}
  # One pass: text put in (a title, the data) is never searched for placeholders again.
  return re.sub("|".join(parts), lambda m: parts[m.group(0)], asset("page.html"))


def save_page(path: str | os.PathLike, text: str) -> Path:
  """Writes `text` to `path` through a temporary file (no half-written page is left)."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
  try:
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise DataError(f"{path}: cannot write ({e.strerror or e})") from None
  return path
