"""Exporting lifted poses: npz and JSON (BVH skeleton animation: `poseformer_jax.video.bvh`).

Coordinates of ``poses_3d`` everywhere in this project: the model's camera
space, metres, x right, y down, z forward (away from the camera), root
(pelvis) relative. npz and JSON keep exactly that. One person's result is a
set of per-frame arrays (`result_arrays`); several people's results are
written track by track (`poseformer_jax.video.tracks`), with the same arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video.formats import H36M_JOINT_NAMES, H36M_PARENTS

FORMAT_TAG = "poseformer_jax.lift/1"
COORDINATES = ("camera space, metres, x right, y down, z forward (away from the camera), "
               "root (pelvis) relative")


def check_poses(poses_3d) -> np.ndarray:
  """(T >= 1, 17, 3) finite poses as float64; a DataError otherwise."""
  poses = np.asarray(poses_3d, np.float64)
  if poses.ndim != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] < 1:
    raise DataError(f"poses_3d must have shape (T, 17, 3), got {poses.shape}")
  if not np.isfinite(poses).all():
    raise DataError("poses_3d contain non-finite values")
  return poses


def result_arrays(poses_3d, keypoints_2d=None, filled=None, **arrays) -> dict[str, np.ndarray]:
  """One person's per-frame result arrays, checked: ``poses_3d`` (T, 17, 3) float32,
  ``keypoints_2d`` (T, 17, 2) float32 pixels (NaN if not given), ``filled`` (T, 17) bool
  (False if not given), and any others by name, (T, ...): ``low_confidence`` (T, 17)
  bool, a root trajectory ``root_3d`` (T, 3), ... (bool kept, numbers as float32)."""
  poses = check_poses(poses_3d)
  t = poses.shape[0]
  out = {"poses_3d": poses.astype(np.float32),
         "keypoints_2d": (np.full((t, 17, 2), np.nan, np.float32) if keypoints_2d is None
                          else np.asarray(keypoints_2d, np.float32)),
         "filled": np.zeros((t, 17), bool) if filled is None else np.asarray(filled, bool)}
  for name, a in arrays.items():
    a = np.asarray(a)
    out[name] = a if a.dtype == bool else a.astype(np.float32)
  wrong = {k: a.shape for k, a in out.items() if a.shape[:1] != (t,)}
  if out["keypoints_2d"].shape != (t, 17, 2) or out["filled"].shape != (t, 17) or wrong:
    shapes = ", ".join(f"{k} {a.shape}" for k, a in out.items() if k != "poses_3d")
    raise DataError(f"{shapes} do not match poses ({t} frames)")
  return out


def frame_rows(frames, arrays: dict[str, np.ndarray]) -> list[dict]:
  """JSON rows, one per frame: ``frame`` (the video frame), then each array of
  `result_arrays`: a (T, 17) bool array NAME as ``NAME_joints`` (the joint indices
  where it is True), the others by name (``poses_3d`` as ``pose_3d``), rounded to
  1e-3 pixels or 1e-6 m."""
  rows = []
  for i, frame in enumerate(frames):
    row = {"frame": int(frame)}
    for name, a in arrays.items():
      if a.dtype == bool:
        row[f"{name}_joints"] = np.flatnonzero(a[i]).tolist()
      else:
        digits = 3 if name == "keypoints_2d" else 6
        row[name.replace("poses_3d", "pose_3d")] = np.round(a[i].astype(np.float64),
                                                            digits).tolist()
    rows.append(row)
  return rows


def header(fps, image_size) -> dict:
  """The top of a result JSON: format, joints, coordinates, units, fps, image size."""
  return {"format": FORMAT_TAG, "joint_names": list(H36M_JOINT_NAMES),
          "parents": list(H36M_PARENTS), "coordinates": COORDINATES, "units": "m",
          "fps": float(fps) if fps else None,
          "image_size": None if image_size is None else [int(v) for v in image_size]}


def save_npz(path: str | os.PathLike, poses_3d, keypoints_2d=None, filled=None, *,
             fps: float | None = None, image_size=None, first_frame: int = 0,
             **arrays) -> Path:
  """Writes an npz with ``poses_3d`` (T, 17, 3) float32, ``keypoints_2d`` (T, 17, 2)
  float32 pixels (gap-filled input), ``filled`` (T, 17) bool (True = interpolated
  joint, `poseformer_jax.gaps`), any further per-frame `arrays` by name (the lift
  command writes ``low_confidence`` (T, 17) bool: the detector's low-confidence
  estimate of a joint that was never confident), ``fps`` (NaN if unknown),
  ``image_size`` (w, h) (0, 0 if unknown), ``joint_names``, ``parents``,
  ``coordinates`` (a description) and ``first_frame`` (the video frame of row 0;
  online lifting skips frames before the person is seen)."""
  out = result_arrays(poses_3d, keypoints_2d, filled, **arrays)
  path = Path(path)
  with open(path, "wb") as f:
    np.savez_compressed(
        f, **out, fps=np.float64(np.nan if fps is None else fps),
        image_size=np.asarray(image_size if image_size is not None else (0, 0), np.int64),
        joint_names=np.asarray(H36M_JOINT_NAMES), parents=np.asarray(H36M_PARENTS, np.int64),
        coordinates=np.asarray(COORDINATES), first_frame=np.int64(first_frame))
  return path


def save_json(path: str | os.PathLike, poses_3d, keypoints_2d=None, filled=None, *,
              fps: float | None = None, image_size=None, first_frame: int = 0,
              **arrays) -> Path:
  """Writes the same content as `save_npz` as JSON (rows of `frame_rows`)::

      {"format": "poseformer_jax.lift/1", "joint_names": [...17], "parents": [...17],
       "coordinates": "...", "units": "m", "fps": 25.0 | null, "image_size": [w, h] | null,
       "frames": [{"frame": 0, "pose_3d": [[x, y, z] x17], "keypoints_2d": [[x, y] x17],
                   "filled_joints": [indices of interpolated joints],
                   "low_confidence_joints": [...]}, ...]}
  """
  out = result_arrays(poses_3d, keypoints_2d, filled, **arrays)
  if keypoints_2d is None:
    del out["keypoints_2d"]
  doc = header(fps, image_size)
  doc["frames"] = frame_rows(first_frame + np.arange(len(out["poses_3d"])), out)
  path = Path(path)
  path.write_text(json.dumps(doc, separators=(",", ":")))
  return path
