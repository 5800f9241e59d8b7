"""Following several people through a video: boxes, crop windows and who is who (numpy only).

The geometry `poseformer_jax.video.people` uses to keep each person's identity:

* a person's box is the bounding box of their keypoints inside the image
  (`box_of`); boxes are compared by intersection over union (`iou`) and by how
  much of one lies inside another (`covered`);
* each tracked person is followed in a square crop window around them
  (`window_around`: twice their size), moved only when they come near its edge
  or shrink in it (`needs_new_window`), so the landmark model sees them at a
  good scale and at a steady place;
* new people come from scans of the whole frame and of overlapping square
  tiles (`scan_tiles`: the full frame finds people who fill it, tiles of the
  frame's height and of half of it find smaller ones); a candidate that lies
  mostly inside a known person or inside a larger candidate is the same person
  (or a part of them) and starts nothing (`new_people`);
* two tracks that come to follow the same person (their boxes overlap) are one:
  the younger ends (`duplicates`).

Boxes are ``(x0, y0, x1, y1)`` pixels; windows ``(x0, y0, side)`` pixels (they may
reach outside the image: the crop is padded).
"""

from __future__ import annotations

import numpy as np


def box_of(keypoints, size) -> np.ndarray:
  """(J, 2) pixels -> (4,) box of the finite keypoints clipped to the (w, h) image; NaN if none."""
  k = np.asarray(keypoints, np.float64)
  k = k[np.isfinite(k).all(-1)]
  if not len(k):
    return np.full(4, np.nan)
  k = np.clip(k, 0, np.asarray(size, np.float64))
  return np.concatenate([k.min(0), k.max(0)])


def area(box) -> float:
  b = np.asarray(box, np.float64)
  return float(max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])) if np.isfinite(b).all() else 0.0


def _intersection(a, b) -> float:
  lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
  return float(np.prod(np.clip(hi - lo, 0, None))) if np.isfinite([*a, *b]).all() else 0.0


def iou(a, b) -> float:
  """Intersection over union of two boxes (0 for empty ones)."""
  inter = _intersection(np.asarray(a, float), np.asarray(b, float))
  union = area(a) + area(b) - inter
  return inter / union if union > 0 else 0.0


def covered(a, b) -> float:
  """The fraction of box `a` that lies inside box `b`."""
  return _intersection(np.asarray(a, float), np.asarray(b, float)) / max(area(a), 1e-9)


def window_around(box, scale: float = 2.0, min_side: float = 96.0) -> tuple[int, int, int]:
  """A square crop window centred on `box`, `scale` times its longer side (at least
  `min_side` pixels): ``(x0, y0, side)``."""
  b = np.asarray(box, np.float64)
  side = max(float(min_side), scale * max(b[2] - b[0], b[3] - b[1]))
  cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
  return int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))


def needs_new_window(box, window, margin: float = 0.12, min_fill: float = 0.3) -> bool:
  """Whether a person's `box` came within `margin` (a fraction of the side) of the
  window's edge, or shrank below `min_fill` of its side (they walked away)."""
  x0, y0, side = window
  b = np.asarray(box, np.float64)
  m = margin * side
  near_edge = b[0] < x0 + m or b[1] < y0 + m or b[2] > x0 + side - m or b[3] > y0 + side - m
  return bool(near_edge or max(b[2] - b[0], b[3] - b[1]) < min_fill * side)


def scan_tiles(size, min_side: int = 256, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
  """``(x0, y0, w, h)`` regions a scan looks at: the whole frame, then square tiles of
  the frame's shorter side and of half of it (each at least `min_side` pixels),
  overlapping by `overlap` of their side and covering the frame."""
  w, h = (int(v) for v in size)
  regions = [(0, 0, w, h)]
  short = min(w, h)
  for side in (short, short // 2):
    if side < min_side or (side == short and w == h):
      continue
    step = side * (1 - overlap)
    nx = int(np.ceil((w - side) / step)) + 1
    ny = int(np.ceil((h - side) / step)) + 1
    for j in range(ny):
      for i in range(nx):
        x = 0 if nx == 1 else round(i * (w - side) / (nx - 1))
        y = 0 if ny == 1 else round(j * (h - side) / (ny - 1))
        regions.append((x, y, side, side))
  return regions


def new_people(candidates, known, cover: float = 0.5) -> list[int]:
  """Indices of the candidate boxes that are new people: larger first, a candidate mostly
  (`cover`) inside a known box or inside a kept larger candidate is left out."""
  order = sorted(range(len(candidates)), key=lambda k: -area(candidates[k]))
  kept: list[int] = []
  for k in order:
    box = candidates[k]
    if area(box) <= 0:
      continue
    others = [*known, *(candidates[i] for i in kept)]
    if all(covered(box, other) < cover and iou(box, other) < cover for other in others):
      kept.append(k)
  return kept


def duplicates(boxes: dict, ages: dict, threshold: float = 0.5) -> set:
  """Ids of tracks to end: of two whose boxes overlap by more than `threshold` (IoU),
  the younger (fewer frames; the later id on a tie)."""
  ids = sorted(boxes, key=lambda i: (-ages[i], str(i)))  # the oldest first
  ended: set = set()
  for n, a in enumerate(ids):
    if a in ended:
      continue
    for b in ids[n + 1:]:
      if b not in ended and iou(boxes[a], boxes[b]) > threshold:
        ended.add(b)
  return ended
