"""A lift result read back for viewing: `load_result` (npz of `poseformer-jax lift`) and `Result`.

Reads both layouts of `poseformer_jax.video.export.save_npz` (one person:
``poses_3d`` (T, 17, 3), ``keypoints_2d``, ``filled``, ``first_frame``) and
`poseformer_jax.video.tracks.save_npz` (several people: ``track_ids`` and
``track_<id>_poses_3d``, ``_keypoints_2d``, ``_filled``, ``_frames``), plus
the optional root trajectory: ``root_3d`` (T, 3) and/or ``poses_3d_camera``
(T, 17, 3) in camera space (per track ``track_<id>_root_3d``,
``track_<id>_poses_3d_camera``). Anything else -- a truncated file, another
tool's npz, a track without frames -- is a `DataError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video.formats import H36M_JOINT_NAMES


@dataclass
class Track:
  """One person's rows.

  frames: (N,) int video frame of each row, consecutive.
  poses_3d: (N, 17, 3) float camera space (x right, y down, z forward), metres,
    root (pelvis) relative.
  keypoints_2d: (N, 17, 2) float pixels, or None.
  filled: (N, 17) bool, True for interpolated 2D joints.
  root_3d: (N, 3) float camera-space pelvis position, metres, or None (no
    trajectory: the person is drawn in place).
  id: the track id (str), None for a one-person result.
  """
  frames: np.ndarray
  poses_3d: np.ndarray
  keypoints_2d: np.ndarray | None = None
  filled: np.ndarray | None = None
  root_3d: np.ndarray | None = None
  id: str | None = None

  @property
  def positions(self) -> np.ndarray:
    """(N, 17, 3) camera-space joints: root-relative poses plus the root when known."""
    return self.poses_3d if self.root_3d is None else self.poses_3d + self.root_3d[:, None]


@dataclass
class Result:
  """What the viewer shows: tracks, frame rate (None if unknown), image size
  (w, h) in pixels (None if unknown) and a name for titles."""
  tracks: list[Track]
  fps: float | None = None
  image_size: tuple[int, int] | None = None
  name: str = "poses"


def from_poses(poses_3d, *, keypoints_2d=None, fps: float | None = None, image_size=None,
               root_3d=None, name: str = "poses") -> Result:
  """A one-person `Result` from arrays: poses (T, 17, 3) root-relative camera metres,
  optional keypoints (T, 17, 2) pixels and root (T, 3) camera metres."""
  arrays = {"poses_3d": poses_3d}
  if keypoints_2d is not None:
    arrays["keypoints_2d"] = keypoints_2d
  if root_3d is not None:
    arrays["root_3d"] = root_3d
  track = _track(arrays, "", name, np.arange(len(np.asarray(poses_3d))), None)
  return Result([track], _fps(fps), _size(image_size), name)


def load_result(path: str | os.PathLike) -> Result:
  """Reads an npz written by ``poseformer-jax lift`` (see the module doc)."""
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such result file")
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except Exception as e:  # noqa: BLE001 - zipfile/zlib/numpy raise many types for damaged files
    text = str(e).splitlines()[0] if str(e) else ""
    raise DataError(f"{path}: not a readable npz result ({type(e).__name__}"
                    f"{': ' + text if text else ''})") from None
  if "track_ids" not in arrays and "poses_3d" not in arrays:
    keys = ", ".join(sorted(arrays)[:6]) or "none"
    raise DataError(f"{path}: not a poseformer-jax lift result (no 'poses_3d' or "
                    f"'track_ids'; its arrays: {keys})")
  names = arrays.get("joint_names")
  if names is not None and [str(n) for n in np.ravel(names)] != list(H36M_JOINT_NAMES):
    raise DataError(f"{path}: joints are not the H36M-17 layout of poseformer-jax")
  fps = _fps(arrays.get("fps"))
  size = _size(arrays.get("image_size"))
  if "track_ids" in arrays:
    ids = [str(i) for i in np.ravel(arrays["track_ids"])]
    if not ids:
      raise DataError(f"{path}: the result has no tracks")
    tracks = [_track(arrays, f"track_{i}_", path, None, i) for i in ids]
  else:
    first = int(np.ravel(arrays.get("first_frame", 0))[0])
    t = len(np.asarray(arrays["poses_3d"]))
    tracks = [_track(arrays, "", path, first + np.arange(t), None)]
  return Result(tracks, fps, size, path.stem)


def _track(arrays: dict, prefix: str, path, frames, track_id) -> Track:
  """Validated arrays ``<prefix>poses_3d`` etc. -> Track (see `load_result`)."""
  who = f"{path}: track {track_id}" if track_id is not None else f"{path}"
  key = f"{prefix}poses_3d"
  if key not in arrays:
    raise DataError(f"{who}: no '{key}' array")
  poses = _array(arrays[key], who, key, (17, 3))
  t = len(poses)
  if frames is None:
    frames = (np.asarray(arrays[f"{prefix}frames"], np.int64).reshape(-1)
              if f"{prefix}frames" in arrays else np.arange(t))
  if len(frames) != t or (t > 1 and np.any(np.diff(frames) != 1)):
    raise DataError(f"{who}: {len(frames)} frame numbers for {t} poses, or not consecutive")
  kps = arrays.get(f"{prefix}keypoints_2d")
  kps = None if kps is None else _array(kps, who, f"{prefix}keypoints_2d", (17, 2), t,
                                        allow_nan=True)
  filled = arrays.get(f"{prefix}filled")
  if filled is not None:
    filled = np.asarray(filled, bool)
    if filled.shape != (t, 17):
      raise DataError(f"{who}: '{prefix}filled' has shape {filled.shape}, expected ({t}, 17)")
  root = _root(arrays, prefix, poses, who)
  return Track(np.asarray(frames, np.int64), poses, kps, filled, root, track_id)


def _root(arrays: dict, prefix: str, poses: np.ndarray, who: str) -> np.ndarray | None:
  """(T, 3) camera-space root from ``root_3d``, else from ``poses_3d_camera``'s pelvis."""
  t = len(poses)
  if f"{prefix}root_3d" in arrays:
    return _array(arrays[f"{prefix}root_3d"], who, f"{prefix}root_3d", (3,), t)
  if f"{prefix}poses_3d_camera" in arrays:
    cam = _array(arrays[f"{prefix}poses_3d_camera"], who, f"{prefix}poses_3d_camera",
                 (17, 3), t)
    return cam[:, 0] - poses[:, 0]
  return None


def _array(a, who: str, key: str, tail: tuple, t: int | None = None, *,
           allow_nan: bool = False) -> np.ndarray:
  """`a` as float64 of shape (t, *tail), t >= 1, finite (NaN allowed if `allow_nan`)."""
  try:
    x = np.asarray(a, np.float64)
  except (TypeError, ValueError):
    raise DataError(f"{who}: '{key}' is not numeric") from None
  want = f"({'T' if t is None else t}, {', '.join(map(str, tail))})"
  if x.ndim != 1 + len(tail) or x.shape[1:] != tail or (t is not None and len(x) != t):
    raise DataError(f"{who}: '{key}' has shape {x.shape}, expected {want}")
  if len(x) == 0:
    raise DataError(f"{who}: '{key}' has no frames")
  bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
  if bad.any():
    raise DataError(f"{who}: '{key}' contains non-finite values")
  return x


def _fps(value) -> float | None:
  if value is None:
    return None
  v = float(np.ravel(value)[0])
  return v if np.isfinite(v) and v > 0 else None


def _size(value) -> tuple[int, int] | None:
  if value is None:
    return None
  v = np.ravel(np.asarray(value))
  if v.size != 2 or not np.all(np.asarray(v, np.float64) > 0):
    return None
  return int(v[0]), int(v[1])
