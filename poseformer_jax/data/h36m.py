"""Human3.6M in the VideoPose3D file format -> model-ready `Sequence`s.

Files in `data_cfg.root` (relative to the working directory):

- `data_3d_h36m.npz`: `positions_3d` = {subject: {action: (N, 32, 3)}} world
  metres, 50 fps.
- `data_2d_h36m_<keypoints>.npz`: `positions_2d` = {subject: {action:
  [4 x (N', 17, 2)]}} pixels, N' >= N (longer detections are trimmed to the
  mocap); `metadata` = {'num_joints': 17, 'keypoints_symmetry': [left, right], ...}.

Every (subject, action, camera) becomes one `Sequence`: 17 joints, 3D in the
camera frame made root-relative (root = 0), 2D normalised with the camera's
resolution. Options as upstream: subject list, action prefixes ('*' = all),
`downsample` (every k-th frame, both splits) and `subset` (a deterministic
contiguous fraction of each training sequence). S11 'Directions' is dropped
from the test split (corrupted video upstream).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from poseformer_jax.data import cameras as cams
from poseformer_jax.data import skeleton
from poseformer_jax.data.dataset import DatasetInfo, Sequence
from poseformer_jax.data.safe_npz import load_npz
from poseformer_jax.errors import DataError

FILE_3D = "data_3d_h36m.npz"


def file_2d(keypoints: str) -> str:
  """Name of the 2D file for a keypoint source, e.g. 'gt' -> 'data_2d_h36m_gt.npz'."""
  return f"data_2d_h36m_{keypoints}.npz"


def parse_list(text: str) -> list[str]:
  """'S1, S5' -> ['S1', 'S5'] (empty items dropped)."""
  return [s.strip() for s in str(text).split(",") if s.strip()]


def deterministic_random(lo: int, hi: int, key: str) -> int:
  """Integer in [lo, hi) derived from sha256(key), as upstream's `subset` start."""
  raw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little", signed=False)
  return int(raw / (2 ** 32 - 1) * (hi - lo)) + lo


def subset_slice(n: int, subset: float, stride: int) -> slice:
  """Frames kept of an n-frame sequence: upstream's `subset` and `downsample` rule."""
  if subset < 1:
    n_frames = int(round(n // stride * subset) * stride)
    start = deterministic_random(0, n - n_frames + 1, str(n))
    return slice(start, start + n_frames, stride)
  return slice(0, n, stride)


# ------------------------------------------------------------------ files

def _check_array(path, where: str, arr: Any, joints: int, dims: int) -> np.ndarray:
  """Validates one (N, joints, dims) float array; returns it (DataError otherwise)."""
  if not isinstance(arr, np.ndarray):
    raise DataError(f"{path}: {where} is a {type(arr).__name__}, expected an array")
  if not np.issubdtype(arr.dtype, np.floating):
    raise DataError(f"{path}: {where} has dtype {arr.dtype}, expected floating point")
  if arr.ndim != 3 or arr.shape[2] != dims:
    raise DataError(f"{path}: {where} has shape {arr.shape}, expected (N, {joints}, {dims})")
  if arr.shape[1] != joints:
    raise DataError(f"{path}: {where} has {arr.shape[1]} joints, expected {joints}")
  if arr.shape[0] == 0:
    raise DataError(f"{path}: {where} is empty (0 frames)")
  return arr


def _check_nested(path, key: str, data: Any) -> dict:
  if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
    raise DataError(f"{path}: {key!r} is not a {{subject: {{action: ...}}}} dict")
  return data


def read_positions_3d(path: str | os.PathLike, subjects=None, check=True) -> dict:
  """Reads `positions_3d` of a 3D file: {subject: {action: (N, 32, 3) world metres}}.

  Validates (shape, dtype, finite values) the sequences of `subjects` (all if
  None) unless `check` is False.
  """
  data = load_npz(path, pickled_keys=["positions_3d"], required=["positions_3d"])
  pos = _check_nested(path, "positions_3d", data["positions_3d"])
  if check:
    for subject in (pos if subjects is None else [s for s in subjects if s in pos]):
      for action, arr in pos[subject].items():
        check_3d(path, subject, action, arr)
  return pos


def check_3d(path, subject: str, action: str, arr: Any) -> np.ndarray:
  """Validates one mocap sequence (N, 32, 3), finite values."""
  arr = _check_array(path, f"{subject} {action!r}", arr, skeleton.NUM_JOINTS_32, 3)
  if not np.isfinite(arr).all():
    raise DataError(f"{path}: {subject} {action!r} has NaN/inf values in the 3D positions")
  return arr


def read_positions_2d(path: str | os.PathLike) -> tuple[dict, dict]:
  """Reads a 2D file: ({subject: {action: [cam0..cam3 (N, J, 2) pixels]}}, metadata)."""
  data = load_npz(path, pickled_keys=["positions_2d", "metadata"],
                  required=["positions_2d", "metadata"])
  pos = _check_nested(path, "positions_2d", data["positions_2d"])
  meta = data["metadata"]
  if not isinstance(meta, dict):
    raise DataError(f"{path}: 'metadata' is not a dict")
  for field in ("num_joints", "keypoints_symmetry"):
    if field not in meta:
      raise DataError(f"{path}: 'metadata' lacks {field!r}")
  sym = meta["keypoints_symmetry"]
  if len(sym) != 2 or len(sym[0]) != len(sym[1]):
    raise DataError(f"{path}: metadata 'keypoints_symmetry' must be two equal-length lists")
  if int(meta["num_joints"]) != skeleton.NUM_JOINTS:
    raise DataError(f"{path}: metadata says {meta['num_joints']} joints, expected "
                    f"{skeleton.NUM_JOINTS} (Human3.6M layout)")
  return pos, meta


# ------------------------------------------------------------------ loading

def _ensure_synthetic(data_cfg, root: Path) -> None:
  """Writes the synthetic dataset into `root` when enabled and no 3D file is there."""
  syn = data_cfg.synthetic
  if syn.enabled and not (root / FILE_3D).exists():
    from poseformer_jax.data import synthetic
    synthetic.write_h36m(root, subjects=parse_list(syn.subjects),
                         actions_per_subject=int(syn.actions_per_subject),
                         frames=int(syn.frames), seed=int(syn.seed))


def _action_filter(actions: str):
  prefixes = parse_list(actions)
  if not prefixes or "*" in prefixes:
    return lambda a: True
  return lambda a: any(a.startswith(p) for p in prefixes)


def load(data_cfg, split: str) -> tuple[list[Sequence], DatasetInfo]:
  """Human3.6M sequences of `split` ('train' | 'test'); see the module docstring."""
  root = Path(data_cfg.root)
  _ensure_synthetic(data_cfg, root)
  path_3d, path_2d = root / FILE_3D, root / file_2d(data_cfg.keypoints)
  subjects = parse_list(data_cfg.subjects_train if split == "train" else data_cfg.subjects_test)
  if not subjects:
    raise DataError(f"{path_3d}: no subjects given for split {split!r}")
  keep_action = _action_filter(data_cfg.actions)
  stride = int(data_cfg.downsample)
  subset = float(data_cfg.subset) if split == "train" else 1.0
  if stride < 1 or not 0 < subset <= 1:
    raise DataError(f"{path_3d}: downsample must be >= 1 and 0 < subset <= 1 "
                    f"(got {stride}, {subset})")

  pos3d = read_positions_3d(path_3d, check=False)
  pos2d, meta = read_positions_2d(path_2d)
  kps_left, kps_right = (tuple(int(j) for j in side) for side in meta["keypoints_symmetry"])
  info = DatasetInfo(name="h36m", num_joints=skeleton.NUM_JOINTS, root_joint=skeleton.ROOT_JOINT,
                     kps_left=kps_left, kps_right=kps_right,
                     joints_left=skeleton.JOINTS_LEFT, joints_right=skeleton.JOINTS_RIGHT)

  sequences = []
  for subject in subjects:
    if subject not in pos3d:
      raise DataError(f"{path_3d}: subject {subject} not found (file has {', '.join(pos3d)})")
    if subject not in pos2d:
      raise DataError(f"{path_2d}: subject {subject} missing from the 2D file "
                      f"(file has {', '.join(pos2d)})")
    if subject not in cams.SUBJECTS:
      raise DataError(f"{path_3d}: subject {subject} has no Human3.6M camera calibration")
    subject_cams = cams.cameras(subject)
    for action, world in pos3d[subject].items():
      if (split == "test" and subject == "S11" and action == "Directions") or not keep_action(action):
        continue
      world = skeleton.reduce_32_to_17(check_3d(path_3d, subject, action, world))
      n = len(world)
      views = pos2d[subject].get(action)
      if views is None:
        raise DataError(f"{path_2d}: {subject} {action!r} missing from the 2D file")
      if not isinstance(views, (list, tuple)) or len(views) != cams.NUM_CAMERAS:
        raise DataError(f"{path_2d}: {subject} {action!r} must be a list of "
                        f"{cams.NUM_CAMERAS} camera arrays")
      keep = subset_slice(n, subset, stride)
      for c, cam in enumerate(subject_cams):
        kps = _check_array(path_2d, f"{subject} {action!r} camera {c}", views[c],
                           skeleton.NUM_JOINTS, 2)
        if len(kps) < n:
          raise DataError(f"{path_2d}: {subject} {action!r} camera {c} has {len(kps)} frames, "
                          f"fewer than its mocap's {n}")
        if not np.isfinite(kps[:n]).all():
          raise DataError(f"{path_2d}: {subject} {action!r} camera {c} has NaN/inf keypoints")
        pos = cams.world_to_camera(world[keep], cam.orientation, cam.translation)
        pos -= pos[:, skeleton.ROOT_JOINT:skeleton.ROOT_JOINT + 1]
        kps = cams.normalize_screen(kps[:n][keep].astype(np.float64), cam.res_w, cam.res_h)
        if len(kps) == 0:
          raise DataError(f"{path_3d}: {subject} {action!r} has no frames left after "
                          f"subset={subset} downsample={stride}")
        sequences.append(Sequence(subject=subject, action=action, camera=c,
                                  keypoints_2d=np.ascontiguousarray(kps, np.float32),
                                  positions_3d=np.ascontiguousarray(pos, np.float32),
                                  image_size=cam.image_size))
  if not sequences:
    raise DataError(f"{path_3d}: no sequences match subjects {','.join(subjects)} and "
                    f"actions {data_cfg.actions!r}")
  return sequences, info
