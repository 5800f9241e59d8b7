"""The Human3.6M skeleton (32 -> 17 joints) and THE flip functions.

Mocap files store 32 joints; the model uses 17. The kept joints, in order,
are the 32-joint indices `KEPT_32`:

    0 pelvis (root)  1 R hip  2 R knee  3 R ankle  4 L hip  5 L knee  6 L ankle
    7 spine  8 thorax  9 neck/nose  10 head  11 L shoulder  12 L elbow
    13 L wrist  14 R shoulder  15 R elbow  16 R wrist

`flip_2d` / `flip_3d` mirror poses left<->right. They are the only flip
implementation in the project (training augmentation, test-time flip, video
lifting) and work unchanged on numpy and jax arrays (also under `jit`): the
joint swap is a fixed index permutation and the mirror a sign vector.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NUM_JOINTS_32 = 32
NUM_JOINTS = 17
ROOT_JOINT = 0

# Parents of the 32-joint mocap skeleton (-1: root).
PARENTS_32 = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
              16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30)
# Joints without independent motion (toes, sites, hand details, duplicates), dropped.
REMOVED_32 = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
KEPT_32 = tuple(j for j in range(NUM_JOINTS_32) if j not in REMOVED_32)

JOINT_NAMES = ("pelvis", "right_hip", "right_knee", "right_ankle", "left_hip",
               "left_knee", "left_ankle", "spine", "thorax", "neck", "head",
               "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
               "right_elbow", "right_wrist")
# Parents in the 17-joint skeleton (the shoulders hang from the thorax, joint 8).
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
JOINTS_LEFT = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT = (1, 2, 3, 14, 15, 16)

assert len(KEPT_32) == NUM_JOINTS == len(JOINT_NAMES) == len(PARENTS)


def reduce_32_to_17(positions: np.ndarray) -> np.ndarray:
  """(..., 32, C) mocap joints -> (..., 17, C) model joints (any units)."""
  return positions[..., KEPT_32, :]


def bones(parents: Sequence[int] = PARENTS) -> tuple[tuple[int, int], ...]:
  """(child, parent) pairs of a skeleton, root excluded."""
  return tuple((j, p) for j, p in enumerate(parents) if p >= 0)


def bone_lengths(positions: np.ndarray, parents: Sequence[int] = PARENTS) -> np.ndarray:
  """(..., J, 3) -> (..., J-1) lengths of the bones (same units as the input)."""
  child, parent = (np.array(a) for a in zip(*bones(parents)))
  return np.linalg.norm(positions[..., child, :] - positions[..., parent, :], axis=-1)


def flip_permutation(num_joints: int, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
  """(J,) int index array that swaps each left joint with its right partner.

  `left[i]` and `right[i]` are partners; the other joints map to themselves.
  """
  left, right = tuple(left), tuple(right)
  if len(left) != len(right):
    raise ValueError(f"left and right joint lists differ in length: {left} vs {right}")
  perm = np.arange(num_joints)
  perm[list(left)] = right
  perm[list(right)] = left
  if sorted(perm.tolist()) != list(range(num_joints)):
    raise ValueError(f"left {left} / right {right} is not a valid swap of {num_joints} joints")
  return perm


def _flip(x, left, right, dims: int):
  if x.shape[-1] != dims:
    raise ValueError(f"expected (..., J, {dims}), got shape {tuple(x.shape)}")
  perm = flip_permutation(x.shape[-2], left, right)
  sign = np.ones(dims, np.float32)
  sign[0] = -1.0
  return x[..., perm, :] * sign.astype(x.dtype)


def flip_2d(x, left: Sequence[int] = JOINTS_LEFT, right: Sequence[int] = JOINTS_RIGHT):
  """Mirrors 2D keypoints: (..., J, 2) normalised screen coords -> same shape.

  Negates x (the mirror axis is the image's vertical centre line, x=0 in
  normalised coordinates) and swaps left/right joints. numpy or jax input;
  `left`/`right` must be static (python/numpy ints). Its own inverse.
  """
  return _flip(x, left, right, 2)


def flip_3d(y, left: Sequence[int] = JOINTS_LEFT, right: Sequence[int] = JOINTS_RIGHT):
  """Mirrors 3D poses: (..., J, 3) camera-frame (metres) -> same shape.

  Negates camera x (mirror in the camera's y-z plane) and swaps left/right
  joints. numpy or jax input; its own inverse.
  """
  return _flip(y, left, right, 3)
