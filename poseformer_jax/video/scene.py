"""Where a moving body is drawn: the floor under its feet, the view around its path.

With a root trajectory, the rendered 3D panel shows the camera-frame joints: the body
walks through the scene instead of standing on the spot. `Scene.fit` finds the floor
from the feet (the camera may be tilted, so "up" is the body's own mean vertical,
pelvis-to-thorax and ankles-to-pelvis over the clip; the floor lies
`ANKLE_HEIGHT_M` below the lowest ankles), a grid on it around the root's path, and
fixed cubic axis limits that hold every frame. All in the renderer's plot axes
(x right, depth, up; `to_plot`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

ANKLE_HEIGHT_M = 0.08   # ankle joint above the sole
GRID_STEP_M = 0.5
GRID_MARGIN_M = 1.0     # grid beyond the root's path on each side


def to_plot(points: np.ndarray) -> np.ndarray:
  """Camera space (..., 3) (x right, y down, z forward) -> plot axes (x, depth, up)."""
  p = np.asarray(points, np.float64)
  return np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)


def _unit(v: np.ndarray) -> np.ndarray:
  return v / max(float(np.linalg.norm(v)), 1e-9)


@dataclasses.dataclass(frozen=True)
class Scene:
  """A clip's floor and view. up: (3,) unit vector; floor: the floor's height along `up`
  (metres); grid: (L, 2, 3) line segments on the floor; centre, radius: the cubic axis
  limits centre +- radius. Everything in plot axes."""

  up: np.ndarray
  floor: float
  grid: np.ndarray
  centre: np.ndarray
  radius: float

  @classmethod
  def fit(cls, poses_camera: np.ndarray) -> "Scene":
    """The scene of (T, 17, 3) camera-frame joints (metres, H36M-17 order)."""
    p = to_plot(poses_camera)
    ankles = p[:, [3, 6]].mean(1)
    up = _unit(np.mean(p[:, 8] - p[:, 0], 0) + np.mean(p[:, 0] - ankles, 0))
    floor = float(np.percentile(p[:, [3, 6]] @ up, 5)) - ANKLE_HEIGHT_M
    roots = p[:, 0]
    e1 = _unit(np.array([1.0, 0.0, 0.0]) - up[0] * up)
    e2 = np.cross(up, e1)
    mid = roots.mean(0)
    mid = mid - (mid @ up - floor) * up
    a = np.abs((roots - mid) @ e1).max() + GRID_MARGIN_M
    b = np.abs((roots - mid) @ e2).max() + GRID_MARGIN_M
    lines = [(mid + s * e1 - b * e2, mid + s * e1 + b * e2)
             for s in np.arange(-a, a + 1e-9, GRID_STEP_M)]
    lines += [(mid - a * e1 + s * e2, mid + a * e1 + s * e2)
              for s in np.arange(-b, b + 1e-9, GRID_STEP_M)]
    grid = np.asarray(lines)
    points = np.concatenate([p.reshape(-1, 3), grid.reshape(-1, 3)])
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    return cls(up=up, floor=floor, grid=grid, centre=centre,
               radius=float((hi - lo).max() / 2 + 0.1))

  def on_floor(self, points_camera: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) dropped onto the floor, in plot axes (the root's trail)."""
    p = to_plot(points_camera)
    return p - ((p @ self.up) - self.floor)[..., None] * self.up
