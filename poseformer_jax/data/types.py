"""The types every data module shares: one camera sequence and the skeleton facts.

`Sequence` and `DatasetInfo` are what readers return and what training,
evaluation and lifting consume. This module imports nothing of the project,
so readers, writers and consumers can all depend on it without a cycle.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Sequence:
  """One camera's view of one recording.

  Attributes:
    subject: e.g. 'S1'.
    action: action name as in the file, e.g. 'Walking 1'.
    camera: camera index 0..3.
    keypoints_2d: (T, J, 2) float32, normalised screen coordinates
      (`cameras.normalize_screen` with this camera's image size).
    positions_3d: (T, J, 3) float32 metres, camera frame, root-relative with
      the root joint set to 0; None where no 3D exists.
    image_size: (w, h) pixels.
    valid: (T,) bool, frames to evaluate (MPI-INF-3DHP); None = all frames.
    rays_2d: (T, J, 2) float32, the same 2D as undistorted pinhole rays
      (x/z, y/z: pixels minus the principal point over the focal length, lens
      distortion undone); None where the camera is unknown. The trajectory
      model's input.
    root_3d: (T, 3) float32 metres, the root joint in the camera frame (not
      root-relative); None where unknown. The trajectory model's target.
  """
  subject: str
  action: str
  camera: int
  keypoints_2d: np.ndarray
  positions_3d: np.ndarray | None
  image_size: tuple[int, int]
  valid: np.ndarray | None = None
  rays_2d: np.ndarray | None = None
  root_3d: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.keypoints_2d)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Skeleton facts of a dataset.

  Attributes:
    name: 'h36m', 'mpi_inf_3dhp', ...
    num_joints: J.
    root_joint: index of the root joint (zero in `positions_3d`).
    kps_left, kps_right: 2D left/right partner joints (of the model-ready 2D).
    joints_left, joints_right: 3D left/right partner joints.
  """
  name: str
  num_joints: int
  root_joint: int
  kps_left: tuple
  kps_right: tuple
  joints_left: tuple
  joints_right: tuple
