"""MPI-INF-3DHP in the P-STMO file format -> model-ready `Sequence`s.

Files in `data_cfg.root` (as made by P-STMO's ``data_to_npz_3dhp*.py``;
each `.npz` has one pickled key `data`):

- `data_train_3dhp.npz`: {"S1 Seq1": [{camera: {'data_3d': (N, 17, 3),
  'data_2d': (N, 17, 2)}}, fps]} -- the list's first element is a dict
  keyed by camera number ('0', '1', '2', '4', ... as strings); P-STMO's
  converter appends the frame rate, which is ignored here. 2D in pixels of
  2048x2048 images.
- `data_test_3dhp.npz`: {"TS1": {'data_3d': (N, 17, 3), 'data_2d': (N, 17, 2),
  'valid': (N,)}} for TS1..TS6; 2D in pixels of 2048x2048 images (TS1-TS4)
  or 1920x1080 (TS5, TS6); `valid` flags the frames that are evaluated.

3D (`univ_annot3`) is in millimetres in the camera frame. The 17 joints
(P-STMO's selection of the 28 annotated ones) are

    0 head top  1 neck  2 R shoulder  3 R elbow  4 R wrist  5 L shoulder
    6 L elbow  7 L wrist  8 R hip  9 R knee  10 R ankle  11 L hip  12 L knee
    13 L ankle  14 pelvis (root)  15 spine  16 head

Each (subject sequence, camera) of the train file and each test sequence
becomes one `Sequence` with the project's conventions: 3D in metres,
root-relative with the root (joint 14) set to 0 (upstream subtracts joint 14
from the other joints and keeps joint 14's absolute position, but zeroes it in
both the loss target and the scored prediction, so scores are the same); 2D
normalised with `cameras.normalize_screen` and the image size of the sequence.
Test sequences keep every frame (windows need the neighbours of valid frames)
and carry `valid`; only flagged frames are scored.

Subjects: `data_cfg.subjects_train` ('S1,S2' or '*') and `subjects_test`
('TS1,TS6' or '*'). `actions` filters training sequences by name prefix
('Seq1'); `downsample`/`subset` apply to training sequences only (the test
protocol always uses every frame, as upstream).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from poseformer_jax.data import cameras as cams
from poseformer_jax.data.safe_npz import load_npz
from poseformer_jax.data.selection import (frame_options, natural_key, prefix_filter,
                                           select_names, subset_slice)
from poseformer_jax.data.types import DatasetInfo, Sequence
from poseformer_jax.errors import DataError

FILE_TRAIN = "data_train_3dhp.npz"
FILE_TEST = "data_test_3dhp.npz"

NUM_JOINTS = 17
ROOT_JOINT = 14
JOINT_NAMES = ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist",
               "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
               "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis", "spine", "head")
# Parents (-1: root): head top <- head <- neck <- spine <- pelvis; limbs from neck and pelvis.
PARENTS = (16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1)
JOINTS_LEFT = (5, 6, 7, 11, 12, 13)
JOINTS_RIGHT = (2, 3, 4, 8, 9, 10)
# Joints scored by PCK/AUC in the official evaluation (`mpii_get_pck_auc_joint_groups.m`).
PCK_JOINTS = tuple(range(14))

MM_PER_METRE = 1000.0
TRAIN_IMAGE_SIZE = (2048, 2048)
TEST_SEQUENCES = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
TEST_IMAGE_SIZES = {"TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048),
                    "TS4": (2048, 2048), "TS5": (1920, 1080), "TS6": (1920, 1080)}

INFO = DatasetInfo(name="mpi_inf_3dhp", num_joints=NUM_JOINTS, root_joint=ROOT_JOINT,
                   kps_left=JOINTS_LEFT, kps_right=JOINTS_RIGHT,
                   joints_left=JOINTS_LEFT, joints_right=JOINTS_RIGHT)

assert len(JOINT_NAMES) == len(PARENTS) == NUM_JOINTS


def image_size_for(name: str) -> tuple[int, int]:
  """(w, h) of a test sequence's images: 1920x1080 for TS5/TS6, else 2048x2048 (as upstream)."""
  return TEST_IMAGE_SIZES.get(name, (2048, 2048))


def to_model_3d(pos_mm: np.ndarray) -> np.ndarray:
  """(N, 17, 3) camera-frame millimetres -> float32 metres, root-relative, root = 0."""
  pos = np.asarray(pos_mm, np.float64)
  pos = (pos - pos[:, ROOT_JOINT:ROOT_JOINT + 1]) / MM_PER_METRE
  return np.ascontiguousarray(pos, np.float32)


# ------------------------------------------------------------------ files

def _check_array(path, where: str, arr: Any, dims: int) -> np.ndarray:
  """Validates one (N, 17, dims) real array; returns it as float64 (DataError otherwise)."""
  if not isinstance(arr, np.ndarray):
    raise DataError(f"{path}: {where} is a {type(arr).__name__}, expected an array")
  if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
    raise DataError(f"{path}: {where} has dtype {arr.dtype}, expected numbers")
  if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, dims):
    raise DataError(f"{path}: {where} has shape {arr.shape}, expected (N, {NUM_JOINTS}, {dims})")
  if arr.shape[0] == 0:
    raise DataError(f"{path}: {where} is empty (0 frames)")
  return arr.astype(np.float64)


def _check_pair(path, where: str, anim: Any) -> tuple[np.ndarray, np.ndarray]:
  """{'data_2d', 'data_3d'} of one sequence -> (2D pixels, 3D mm) float64, same length."""
  if not isinstance(anim, dict):
    raise DataError(f"{path}: {where} is a {type(anim).__name__}, expected a dict with "
                    "'data_2d' and 'data_3d'")
  for key in ("data_2d", "data_3d"):
    if key not in anim:
      raise DataError(f"{path}: {where} lacks {key!r} (has {', '.join(map(repr, anim))})")
  kps = _check_array(path, f"{where} 'data_2d'", anim["data_2d"], 2)
  pos = _check_array(path, f"{where} 'data_3d'", anim["data_3d"], 3)
  if len(kps) != len(pos):
    raise DataError(f"{path}: {where} has {len(kps)} 2D frames but {len(pos)} 3D frames")
  if not np.isfinite(kps).all():
    raise DataError(f"{path}: {where} has NaN/inf values in 'data_2d'")
  return kps, pos


def _read_data(path: Path) -> dict:
  if not path.is_file():
    raise DataError(f"{path}: file not found (MPI-INF-3DHP in the P-STMO format; or set "
                    "data.synthetic.enabled=True for a synthetic stand-in)")
  data = load_npz(path, pickled_keys=["data"], required=["data"])["data"]
  if not isinstance(data, dict) or not data:
    raise DataError(f"{path}: 'data' is not a non-empty dict of sequences")
  return data


def read_train(path: str | os.PathLike
               ) -> dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]]:
  """Reads `data_train_3dhp.npz`: {(subject, seq, camera): (2D pixels, 3D mm)} float64.

  Validates every sequence (keys, shapes, equal lengths, finite values).
  """
  path = Path(path)
  out = {}
  for name, entry in _read_data(path).items():
    parts = str(name).split(" ")
    if len(parts) != 2:
      raise DataError(f"{path}: sequence key {name!r} is not '<subject> <sequence>' "
                      "(e.g. 'S1 Seq1')")
    if not isinstance(entry, (list, tuple)) or not entry or not isinstance(entry[0], dict):
      raise DataError(f"{path}: {name!r} must be a list whose first element is a "
                      "{camera: {'data_2d', 'data_3d'}} dict")
    if not entry[0]:
      raise DataError(f"{path}: {name!r} has no cameras")
    for cam, anim in entry[0].items():
      try:
        cam_index = int(cam)
      except (TypeError, ValueError):
        raise DataError(f"{path}: {name!r} camera key {cam!r} is not a camera number") from None
      kps, pos = _check_pair(path, f"{name!r} camera {cam}", anim)
      if not np.isfinite(pos).all():
        raise DataError(f"{path}: {name!r} camera {cam} has NaN/inf values in 'data_3d'")
      out[(parts[0], parts[1], cam_index)] = (kps, pos)
  return out


def read_test(path: str | os.PathLike
              ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Reads `data_test_3dhp.npz`: {'TS1': (2D pixels, 3D mm, valid (N,) bool)}.

  `valid` may be stored as bool or 0/1 numbers (any shape with N entries).
  Non-finite 3D is an error in valid frames; in invalid frames (never
  scored) it is replaced by 0.
  """
  path = Path(path)
  out = {}
  for name, anim in _read_data(path).items():
    kps, pos = _check_pair(path, repr(name), anim)
    if "valid" not in anim:
      raise DataError(f"{path}: {name!r} lacks 'valid' (the mask of evaluated frames)")
    valid = anim["valid"]
    if not isinstance(valid, np.ndarray) or not (
        valid.dtype == bool or np.issubdtype(valid.dtype, np.number)):
      raise DataError(f"{path}: {name!r} 'valid' is not a numeric or bool array")
    valid = valid.reshape(-1)
    if len(valid) != len(kps):
      raise DataError(f"{path}: {name!r} 'valid' has {len(valid)} entries for {len(kps)} frames")
    if valid.dtype != bool:
      if not np.isin(valid, (0, 1)).all():
        raise DataError(f"{path}: {name!r} 'valid' has values other than 0/1")
      valid = valid.astype(bool)
    finite = np.isfinite(pos).all(axis=(1, 2))
    if not finite[valid].all():
      raise DataError(f"{path}: {name!r} has NaN/inf values in 'data_3d' of valid frames")
    if not finite.all():
      pos = np.where(finite[:, None, None], pos, 0.0)
    out[str(name)] = (kps, pos, valid)
  return out


# ------------------------------------------------------------------ loading

def load(data_cfg, split: str) -> tuple[list[Sequence], DatasetInfo]:
  """MPI-INF-3DHP sequences of `split` ('train' | 'test'); see the module docstring. Reads only."""
  root = Path(data_cfg.root)
  if split == "train":
    return _load_train(data_cfg, root / FILE_TRAIN), INFO
  return _load_test(data_cfg, root / FILE_TEST), INFO


def _load_train(data_cfg, path: Path) -> list[Sequence]:
  stride, subset = frame_options(data_cfg, path, training=True)
  keep_seq = prefix_filter(data_cfg.actions)
  data = read_train(path)
  subjects = select_names(data_cfg.subjects_train, (k[0] for k in data), path, "subject")
  w, h = TRAIN_IMAGE_SIZE
  sequences = []
  for subject in subjects:
    keys = sorted((k for k in data if k[0] == subject and keep_seq(k[1])),
                  key=lambda k: (natural_key(k[1]), k[2]))
    for key in keys:
      kps, pos = data[key]
      keep = subset_slice(len(kps), subset, stride)
      kps, pos = kps[keep], pos[keep]
      if len(kps) == 0:
        raise DataError(f"{path}: {key[0]} {key[1]} camera {key[2]} has no frames left after "
                        f"subset={subset} downsample={stride}")
      sequences.append(Sequence(
          subject=key[0], action=key[1], camera=key[2],
          keypoints_2d=np.ascontiguousarray(cams.normalize_screen(kps, w, h), np.float32),
          positions_3d=to_model_3d(pos), image_size=(w, h)))
  if not sequences:
    raise DataError(f"{path}: no training sequences match subjects "
                    f"{data_cfg.subjects_train!r} and actions {data_cfg.actions!r}")
  return sequences


def _load_test(data_cfg, path: Path) -> list[Sequence]:
  data = read_test(path)
  names = select_names(data_cfg.subjects_test, data, path, "test sequence")
  sequences = []
  for name in names:
    kps, pos, valid = data[name]
    w, h = image_size_for(name)
    sequences.append(Sequence(
        subject=name, action=name, camera=0,
        keypoints_2d=np.ascontiguousarray(cams.normalize_screen(kps, w, h), np.float32),
        positions_3d=to_model_3d(pos), image_size=(w, h), valid=valid))
  return sequences
