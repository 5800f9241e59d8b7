"""The dataset contract: what training and evaluation read about data.

`load_sequences(data_cfg, split)` returns one `Sequence` per (subject, action,
camera) with model-ready arrays, plus the `DatasetInfo` describing the
skeleton. Readers for each dataset live in their own module; `load_sequences`
only dispatches on `data_cfg.dataset`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from poseformer_jax.errors import ConfigError


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
  """
  subject: str
  action: str
  camera: int
  keypoints_2d: np.ndarray
  positions_3d: np.ndarray | None
  image_size: tuple[int, int]
  valid: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.keypoints_2d)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Skeleton facts of a dataset.

  Attributes:
    name: 'h36m', 'mpi_inf_3dhp', ...
    num_joints: J.
    root_joint: index of the root joint (zero in `positions_3d`).
    kps_left, kps_right: 2D left/right partner joints (from the 2D file's metadata).
    joints_left, joints_right: 3D left/right partner joints.
  """
  name: str
  num_joints: int
  root_joint: int
  kps_left: tuple
  kps_right: tuple
  joints_left: tuple
  joints_right: tuple


def load_sequences(data_cfg, split: str) -> tuple[list[Sequence], DatasetInfo]:
  """Loads the `split` ('train' | 'test') sequences of `data_cfg.dataset`.

  `data_cfg` is the config's `data` block (see `config_lib.base_config`).
  Raises `DataError` for bad files, `ConfigError` for a bad split/dataset.
  """
  if split not in ("train", "test"):
    raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
  dataset = getattr(data_cfg, "dataset", "h36m")
  if dataset == "h36m":
    from poseformer_jax.data import h36m
    return h36m.load(data_cfg, split)
  if dataset == "mpi_inf_3dhp":
    from poseformer_jax.data import mpi_inf_3dhp
    return mpi_inf_3dhp.load(data_cfg, split)
  # Dispatch point: add further datasets here.
  raise ConfigError(f"unknown data.dataset {dataset!r}; supported: 'h36m', 'mpi_inf_3dhp'")
