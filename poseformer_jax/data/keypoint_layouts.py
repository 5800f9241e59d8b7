"""2D keypoint layouts of Human3.6M 2D files, and their mapping to the model's 17 joints.

A 2D file's `metadata['layout_name']` names its joint order (files without
one are read as 'h36m'):

- 'h36m': the model's own 17 joints (`skeleton.JOINT_NAMES`), as VideoPose3D
  stores ground truth and CPN detections. Used as is; the 2D flip partners
  come from the file's `keypoints_symmetry`.
- 'sh_mpii16': 16 joints of a detector trained on MPII (Stacked Hourglass of
  Martinez et al. 2017), in the detector's order `SH_MPII16_JOINTS`. Mapped to
  the 17 joints, so models trained on ground-truth 2D take them unchanged:
  15 joints (pelvis, legs, arms, thorax = MPII's upper neck, head = MPII's
  head top) go to their Human3.6M index; Neck/Nose (9), which MPII lacks, and
  Spine (7) are placed on a segment between two mapped joints at a fixed
  fraction measured on ground truth (`NECK_NOSE_FRACTION`, `SPINE_FRACTION`).
  The detector's own "Spine" is not used: it is MPII's thorax landmark, on
  Human3.6M's S8 43 px higher in the image than the mocap spine on average
  (44.5 px mean distance), while the spine placed between the detected hip
  and thorax is 7.0 px from it.
  After mapping, the 2D flip partners are `skeleton.JOINTS_LEFT/RIGHT`; a
  file's `keypoints_symmetry` (and `joint_names`, when present) must agree
  with the detector order, which catches files in another order.

`layout_for(metadata, path)` returns the `Layout` of a file; `Layout.to_h36m`
maps (N, J_file, 2) pixels to (N, 17, 2).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError

SH_MPII16_JOINTS = ("RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip", "Spine",
                    "Thorax", "Head", "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow",
                    "LWrist")
# Left/right partners in the detector order (as the files' `keypoints_symmetry` lists them).
SH_MPII16_LEFT = (3, 4, 5, 13, 14, 15)
SH_MPII16_RIGHT = (2, 1, 0, 12, 11, 10)

# For each Human3.6M joint (skeleton.JOINT_NAMES order), its detector joint; None = derived.
SH_MPII16_SOURCE = (6, 2, 1, 0, 3, 4, 5, None, 8, None, 9, 13, 14, 15, 12, 11, 10)

# Neck/Nose (9) = Thorax (8) + NECK_NOSE_FRACTION * (Head (10) - Thorax (8)), in pixels.
# Measured on the ground-truth 2D of the training subjects S1, S5, S6, S7 (the mocap projected
# through all four cameras, 1,205,688 camera-frames): the fraction minimising the mean 2D
# distance of the placed point to the true joint 9, searched in steps of 0.001 (least squares
# gives 0.440). Mean distance there 10.8 px (6.1 px on held-out S8's ground truth); on the
# Stacked Hourglass detections of S8, 15.4 px.
NECK_NOSE_FRACTION = 0.435
# Spine (7) = Hip (0) + SPINE_FRACTION * (Thorax (8) - Hip (0)), measured the same way (least
# squares 0.475): mean distance 6.4 px on that ground truth, 7.0 px on S8's detections.
SPINE_FRACTION = 0.471
# (joint, from, to, fraction): joint = from + fraction * (to - from), in Human3.6M indices.
SH_MPII16_DERIVED = ((7, 0, 8, SPINE_FRACTION), (9, 8, 10, NECK_NOSE_FRACTION))


@dataclasses.dataclass(frozen=True)
class Layout:
  """A 2D file's joint layout.

  Attributes:
    name: the `layout_name` in the file's metadata.
    num_joints: joints per frame in the file.
    to_h36m: (N, num_joints, 2) pixels -> (N, 17, 2) pixels in `skeleton.JOINT_NAMES` order.
    symmetry: ([left], [right]) the file's `keypoints_symmetry` must state, or None (any).
    joint_names: the names a file's optional `joint_names` must list, or None.
  """
  name: str
  num_joints: int
  to_h36m: Callable[[np.ndarray], np.ndarray]
  symmetry: tuple | None = None
  joint_names: tuple | None = None


def sh_mpii16_to_h36m(kps: np.ndarray) -> np.ndarray:
  """(..., 16, 2) detector-order joints -> (..., 17, 2) Human3.6M order (same dtype)."""
  kps = np.asarray(kps)
  if kps.shape[-2:] != (len(SH_MPII16_JOINTS), 2):
    raise ValueError(f"expected (..., 16, 2) sh_mpii16 keypoints, got {kps.shape}")
  out = np.empty(kps.shape[:-2] + (skeleton.NUM_JOINTS, 2), kps.dtype)
  for j, source in enumerate(SH_MPII16_SOURCE):
    if source is not None:
      out[..., j, :] = kps[..., source, :]
  for joint, start, end, fraction in SH_MPII16_DERIVED:
    out[..., joint, :] = out[..., start, :] + fraction * (out[..., end, :] - out[..., start, :])
  return out


LAYOUTS = {
    "h36m": Layout("h36m", skeleton.NUM_JOINTS, lambda kps: kps),
    "sh_mpii16": Layout("sh_mpii16", len(SH_MPII16_JOINTS), sh_mpii16_to_h36m,
                        symmetry=(SH_MPII16_LEFT, SH_MPII16_RIGHT), joint_names=SH_MPII16_JOINTS),
}


def layout_for(meta: dict, path) -> Layout:
  """The `Layout` of a 2D file from its metadata; DataError when unknown or inconsistent."""
  name = str(meta.get("layout_name", "h36m"))
  if name not in LAYOUTS:
    raise DataError(f"{path}: unknown 2D layout_name {name!r}; supported: {', '.join(LAYOUTS)}")
  layout = LAYOUTS[name]
  try:
    num_joints = int(meta["num_joints"])
    sym = tuple(tuple(int(j) for j in side) for side in meta["keypoints_symmetry"])
    names = meta.get("joint_names")
    names = None if names is None else tuple(str(n) for n in names)
  except (TypeError, ValueError):
    raise DataError(f"{path}: metadata 'num_joints', 'keypoints_symmetry' or 'joint_names' "
                    "is not a number / lists of joint indices / a list of names") from None
  if num_joints != layout.num_joints:
    raise DataError(f"{path}: metadata says {num_joints} joints, expected "
                    f"{layout.num_joints} for layout {name!r}")
  if layout.symmetry is not None and sym != layout.symmetry:
    raise DataError(f"{path}: keypoints_symmetry {[list(s) for s in sym]} is not that of "
                    f"layout {name!r} {[list(s) for s in layout.symmetry]}")
  if layout.joint_names is not None and names is not None and names != layout.joint_names:
    raise DataError(f"{path}: joint_names {list(names)} differ from layout {name!r} "
                    f"({', '.join(layout.joint_names)})")
  return layout
