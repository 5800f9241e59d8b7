"""Human3.6M in the VideoPose3D file format -> model-ready `Sequence`s.

Files in `data_cfg.root` (relative to the working directory):

- `data_3d_h36m.npz`: `positions_3d` = {subject: {action: (N, 32, 3)}} world
  metres, 50 fps.
- `data_2d_h36m_<keypoints>.npz`: `positions_2d` = {subject: {action:
  [4 x (N', J, 2)]}} pixels; `metadata` = {'num_joints': J,
  'keypoints_symmetry': [left, right], 'layout_name': ...}. The layout
  (`keypoint_layouts`) says how the J joints map to the model's 17: 'h36m'
  (J = 17, as is) or 'sh_mpii16' (J = 16, MPII-trained detectors).

Either name may also carry a `_train` suffix (`data_3d_h36m_train.npz`, the
name of the training-subject release): the exact name wins when both exist.

Every (subject, action, camera) becomes one `Sequence`: 17 joints, 3D in the
camera frame made root-relative (root = 0), 2D normalised with the camera's
resolution; also the 2D as undistorted rays and the root's camera-frame
position (the trajectory model's input and target). 2D longer than the mocap is trimmed to it (videos can have extra
frames, as VideoPose3D does); 2D up to `MAX_FRAME_SHORTFALL` frames shorter
trims the mocap instead; a larger shortfall is an error. Actions of the 2D
file without mocap are skipped. Options as upstream: subject list, action
prefixes ('*' = all), `downsample` (every k-th frame, both splits) and
`subset` (a deterministic contiguous fraction of each training sequence),
see `selection`. S11 'Directions' is dropped from the test split (corrupted
video upstream).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from poseformer_jax.data import cameras as cams
from poseformer_jax.data import keypoint_layouts as layouts
from poseformer_jax.data import skeleton
from poseformer_jax.data.safe_npz import load_npz
from poseformer_jax.data.selection import frame_options, parse_list, prefix_filter, subset_slice
from poseformer_jax.data.types import DatasetInfo, Sequence
from poseformer_jax.errors import DataError

FILE_3D = "data_3d_h36m.npz"
# 2D at most this many frames shorter than its mocap trims the mocap; more is an error.
MAX_FRAME_SHORTFALL = 5


def file_2d(keypoints: str) -> str:
  """Name of the 2D file for a keypoint source, e.g. 'gt' -> 'data_2d_h36m_gt.npz'."""
  return f"data_2d_h36m_{keypoints}.npz"


def find_file(root: str | os.PathLike, name: str) -> Path:
  """`root/name`, or `root/<name>_train.npz` when only that exists (else `root/name`)."""
  path = Path(root) / name
  train = path.with_name(path.stem + "_train" + path.suffix)
  return train if not path.exists() and train.exists() else path


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
  """Reads a 2D file: ({subject: {action: [cam0..cam3 (N, J, 2) pixels]}}, metadata).

  The arrays are as stored (J joints of the file's layout); the metadata is
  checked against its layout (`keypoint_layouts.layout_for`).
  """
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
  layouts.layout_for(meta, path)
  return pos, meta


# ------------------------------------------------------------------ loading

def _info(meta: dict, layout: layouts.Layout) -> DatasetInfo:
  """Human3.6M's DatasetInfo; 2D flip partners from a file in the model's order, else the model's."""
  if layout.symmetry is None:
    kps_left, kps_right = (tuple(int(j) for j in side) for side in meta["keypoints_symmetry"])
  else:
    kps_left, kps_right = skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT
  return DatasetInfo(name="h36m", num_joints=skeleton.NUM_JOINTS, root_joint=skeleton.ROOT_JOINT,
                     kps_left=kps_left, kps_right=kps_right,
                     joints_left=skeleton.JOINTS_LEFT, joints_right=skeleton.JOINTS_RIGHT)


def _check_subject(subject: str, pos3d: dict, pos2d: dict, path_3d, path_2d) -> None:
  if subject not in pos3d:
    raise DataError(f"{path_3d}: subject {subject} not found (file has {', '.join(pos3d)})")
  if subject not in pos2d:
    raise DataError(f"{path_2d}: subject {subject} missing from the 2D file "
                    f"(file has {', '.join(pos2d)})")
  if subject not in cams.SUBJECTS:
    raise DataError(f"{path_3d}: subject {subject} has no Human3.6M camera calibration")


def _camera_keypoints(path_2d, subject: str, action: str, views: Any,
                      layout: layouts.Layout) -> list[np.ndarray]:
  """The 2D of one action: [cam0..cam3 (N', 17, 2) pixels], checked and mapped to 17 joints."""
  if views is None:
    raise DataError(f"{path_2d}: {subject} {action!r} missing from the 2D file")
  if not isinstance(views, (list, tuple)) or len(views) != cams.NUM_CAMERAS:
    raise DataError(f"{path_2d}: {subject} {action!r} must be a list of "
                    f"{cams.NUM_CAMERAS} camera arrays")
  return [layout.to_h36m(_check_array(path_2d, f"{subject} {action!r} camera {c}", view,
                                      layout.num_joints, 2))
          for c, view in enumerate(views)]


def _common_length(path_2d, subject: str, action: str, views: list, n_3d: int) -> int:
  """Frames shared by the mocap and every camera's 2D (the 2D may run longer; see the docstring)."""
  c = int(np.argmin([len(v) for v in views]))
  shortfall = n_3d - len(views[c])
  if shortfall > MAX_FRAME_SHORTFALL:
    raise DataError(f"{path_2d}: {subject} {action!r} camera {c} has {len(views[c])} frames, "
                    f"fewer than its mocap's {n_3d} (at most {MAX_FRAME_SHORTFALL} missing "
                    "frames are trimmed)")
  return n_3d - max(shortfall, 0)


def _action_sequences(path_3d, path_2d, subject: str, action: str, world: Any, views: Any,
                      layout: layouts.Layout, stride: int, subset: float) -> list[Sequence]:
  """The four camera `Sequence`s of one recording."""
  world = skeleton.reduce_32_to_17(check_3d(path_3d, subject, action, world))
  views = _camera_keypoints(path_2d, subject, action, views, layout)
  n = _common_length(path_2d, subject, action, views, len(world))
  keep = subset_slice(n, subset, stride)
  out = []
  for c, (cam, kps) in enumerate(zip(cams.cameras(subject), views)):
    if not np.isfinite(kps[:n]).all():
      raise DataError(f"{path_2d}: {subject} {action!r} camera {c} has NaN/inf keypoints")
    pos = cams.world_to_camera(world[:n][keep], cam.orientation, cam.translation)
    root = pos[:, skeleton.ROOT_JOINT].copy()
    pos -= pos[:, skeleton.ROOT_JOINT:skeleton.ROOT_JOINT + 1]
    px = kps[:n][keep].astype(np.float64)
    kps = cams.normalize_screen(px, cam.res_w, cam.res_h)
    if len(kps) == 0:
      raise DataError(f"{path_3d}: {subject} {action!r} has no frames left after "
                      f"subset={subset} downsample={stride}")
    out.append(Sequence(subject=subject, action=action, camera=c,
                        keypoints_2d=np.ascontiguousarray(kps, np.float32),
                        positions_3d=np.ascontiguousarray(pos, np.float32),
                        image_size=cam.image_size,
                        rays_2d=np.ascontiguousarray(cams.pixels_to_rays(px, cam), np.float32),
                        root_3d=np.ascontiguousarray(root, np.float32)))
  return out


def load(data_cfg, split: str) -> tuple[list[Sequence], DatasetInfo]:
  """Human3.6M sequences of `split` ('train' | 'test'); see the module docstring. Reads only.

  For 'train', every source in `data_cfg.keypoints_mix` adds its own copy of each sequence
  (same 3D, that source's 2D): the detection mix. Evaluation reads `data_cfg.keypoints` alone.
  """
  root = Path(data_cfg.root)
  sources = [data_cfg.keypoints]
  if split == "train":
    sources += [k for k in parse_list(data_cfg.get("keypoints_mix", "")) if k not in sources]
  sequences, info = _load_source(data_cfg, split, root, sources[0])
  for keypoints in sources[1:]:
    more, more_info = _load_source(data_cfg, split, root, keypoints)
    if (more_info.kps_left, more_info.kps_right) != (info.kps_left, info.kps_right):
      raise DataError(f"{root}: data.keypoints_mix source {keypoints!r} orders the 2D joints "
                      f"unlike {sources[0]!r}; mix only sources that map to the same layout")
    sequences += more
  return sequences, info


def _load_source(data_cfg, split: str, root: Path,
                 keypoints: str) -> tuple[list[Sequence], DatasetInfo]:
  """One 2D source's sequences of `split`, paired with the 3D file."""
  path_3d, path_2d = find_file(root, FILE_3D), find_file(root, file_2d(keypoints))
  subjects = parse_list(data_cfg.subjects_train if split == "train" else data_cfg.subjects_test)
  if not subjects:
    raise DataError(f"{path_3d}: no subjects given for split {split!r}")
  keep_action = prefix_filter(data_cfg.actions)
  stride, subset = frame_options(data_cfg, path_3d, training=split == "train")

  pos3d = read_positions_3d(path_3d, check=False)
  pos2d, meta = read_positions_2d(path_2d)
  layout = layouts.layout_for(meta, path_2d)
  sequences = []
  for subject in subjects:
    _check_subject(subject, pos3d, pos2d, path_3d, path_2d)
    for action, world in pos3d[subject].items():
      if (split == "test" and subject == "S11" and action == "Directions") or not keep_action(action):
        continue
      sequences += _action_sequences(path_3d, path_2d, subject, action, world,
                                     pos2d[subject].get(action), layout, stride, subset)
  if not sequences:
    raise DataError(f"{path_3d}: no sequences match subjects {','.join(subjects)} and "
                    f"actions {data_cfg.actions!r}")
  return sequences, _info(meta, layout)
