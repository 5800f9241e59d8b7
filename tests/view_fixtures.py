"""Synthetic lift results for the viewer's tests (tests/test_view*.py).

A standing H36M-17 skeleton facing the camera (camera space: x right, y
down, z forward, metres, root relative; the person's left at +x) whose left
arm swings from down (frame 0) to up (last frame), so every frame's pose is
different and known.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from poseformer_jax.video import export, tracks

# Person-facing-the-camera rest pose, camera space (left = +x, up = -y), metres.
_REST = {0: (0, 0, 0), 1: (-0.12, 0, 0), 2: (-0.13, 0.42, 0.02), 3: (-0.14, 0.84, 0),
         4: (0.12, 0, 0), 5: (0.13, 0.42, 0.02), 6: (0.14, 0.84, 0), 7: (0, -0.24, 0),
         8: (0, -0.48, 0), 9: (0, -0.58, 0), 10: (0, -0.7, 0), 11: (0.18, -0.47, 0),
         14: (-0.18, -0.47, 0), 15: (-0.3, -0.2, 0), 16: (-0.36, 0.04, 0)}
UPPER_ARM, FOREARM = 0.28, 0.25


def arm_pose(angle_deg: float) -> np.ndarray:
  """(17, 3) camera-space pose; the left arm at `angle_deg` from hanging down (0)
  through sideways (90) to raised (180), in the body's plane."""
  pose = np.zeros((17, 3))
  for j, p in _REST.items():
    pose[j] = p
  a = np.radians(angle_deg)
  d = np.array([np.sin(a), np.cos(a), 0.0])  # down is +y
  pose[12] = pose[11] + UPPER_ARM * d
  pose[13] = pose[12] + FOREARM * d
  return pose


def arm_clip(t: int = 60, start: float = 20.0, stop: float = 160.0) -> np.ndarray:
  """(t, 17, 3): the left arm swinging linearly from `start` to `stop` degrees."""
  return np.stack([arm_pose(a) for a in np.linspace(start, stop, t)])


def project(poses_camera: np.ndarray, size=(640, 480), focal: float = 900.0) -> np.ndarray:
  """Pinhole pixels (..., 2) of camera-space points placed 4 m in front of the camera."""
  p = poses_camera + np.array([0.0, 0.0, 4.0])
  return focal * p[..., :2] / p[..., 2:] + np.array(size) / 2


def write_single(path, poses, *, fps: float = 30.0, root=None, first_frame: int = 0,
                 size=(640, 480)) -> Path:
  """A one-person result npz as `poseformer-jax lift` writes it, plus ``root_3d`` and
  ``poses_3d_camera`` when `root` (T, 3) camera metres is given."""
  cam = poses if root is None else poses + root[:, None]
  filled = np.zeros(poses.shape[:2], bool)
  filled[::7, 13] = True
  export.save_npz(path, poses, project(cam, size), filled, fps=fps, image_size=size,
                  first_frame=first_frame)
  if root is not None:
    with np.load(path) as z:
      arrays = dict(z)
    arrays.update(root_3d=np.asarray(root, np.float32), poses_3d_camera=cam.astype(np.float32))
    np.savez_compressed(path, **arrays)
  return Path(path)


def write_tracks(path, people: dict, *, fps: float = 30.0, size=(640, 480),
                 roots: dict | None = None) -> Path:
  """A multi-person result npz: `people` {id: (first frame, poses (N, 17, 3))}; `roots`
  {id: (N, 3)} adds ``track_<id>_root_3d`` and ``track_<id>_poses_3d_camera``."""
  results = []
  for tid, (first, poses) in people.items():
    results.append(dict(track=tid, frames=first + np.arange(len(poses)), poses_3d=poses,
                        keypoints_2d=project(poses, size), filled=np.zeros(poses.shape[:2], bool)))
  tracks.save_npz(path, results, fps=fps, image_size=size)
  if roots:
    with np.load(path) as z:
      arrays = dict(z)
    for tid, root in roots.items():
      arrays[f"track_{tid}_root_3d"] = np.asarray(root, np.float32)
      arrays[f"track_{tid}_poses_3d_camera"] = (people[tid][1] + root[:, None]).astype(np.float32)
    np.savez(path, **arrays)
  return Path(path)


def page_data(page: str) -> dict:
  """The JSON data block of a viewer page."""
  m = re.search(r'<script type="application/json" id="pose-data">(.*?)</script>', page, re.S)
  assert m, "no pose-data block"
  return json.loads(m.group(1))


def floats(b64: str, shape) -> np.ndarray:
  import base64
  return np.frombuffer(base64.b64decode(b64), "<f4").reshape(shape)
