"""Writes the ground-truth 2D file `data_2d_h36m_gt.npz` from `data_3d_h36m.npz`.

    python -m poseformer_jax.data.prepare_h36m --root DIR [--overwrite] [--compress]

`DIR/data_3d_h36m_train.npz` is read when `DIR/data_3d_h36m.npz` is absent.
Each subject's mocap (32 joints, world metres) is reduced to 17 joints, moved
into each of its four cameras' frames and projected with the full distortion
model (`cameras.project_camera`), giving pixels. The output is exactly the
VideoPose3D layout, so upstream code can read it:

    positions_2d = {subject: {action: [cam0, cam1, cam2, cam3]}}, each (N, 17, 2) float32 pixels
    metadata = {'layout_name': 'h36m', 'num_joints': 17,
                'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from absl import flags
from tqdm import tqdm

from poseformer_jax import cli
from poseformer_jax.data import cameras as cams
from poseformer_jax.data import h36m
from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError


def metadata() -> dict:
  """The 2D file's `metadata` dict (Human3.6M 17-joint layout)."""
  return {"layout_name": "h36m", "num_joints": skeleton.NUM_JOINTS,
          "keypoints_symmetry": [list(skeleton.JOINTS_LEFT), list(skeleton.JOINTS_RIGHT)]}


def project_sequence(world_32: np.ndarray, subject: str) -> list[np.ndarray]:
  """(N, 32, 3) world metres -> [4 x (N, 17, 2) float32 pixels], one per camera of `subject`."""
  world = skeleton.reduce_32_to_17(np.asarray(world_32, np.float64))
  out = []
  for cam in cams.cameras(subject):
    x_cam = cams.world_to_camera(world, cam.orientation, cam.translation)
    out.append(cams.project_camera(x_cam, cam).astype(np.float32))
  return out


def project_positions(positions_3d: dict, progress: bool = False) -> dict:
  """{subject: {action: (N, 32, 3) world m}} -> {subject: {action: [4 x (N, 17, 2) px]}}."""
  items = [(s, a) for s, acts in positions_3d.items() for a in acts]
  if progress:
    items = tqdm(items, desc="projecting", unit="seq")
  out: dict = {s: {} for s in positions_3d}
  for subject, action in items:
    out[subject][action] = project_sequence(positions_3d[subject][action], subject)
  return out


def save_2d(path: str | os.PathLike, positions_2d: dict, compress: bool = False) -> None:
  """Writes a 2D file atomically (temporary file, then rename).

  Uncompressed by default: projected float32 pixels barely compress (-15%)
  and compressing the full dataset takes ~30x longer. `np.load` (ours and
  upstream's) reads either.
  """
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp.npz")
  save = np.savez_compressed if compress else np.savez
  save(tmp, positions_2d=positions_2d, metadata=metadata())
  os.replace(tmp, path)


def prepare(root: str | os.PathLike, overwrite: bool = False, progress: bool = True,
            compress: bool = False) -> Path:
  """Writes `root/data_2d_h36m_gt.npz` from `root/data_3d_h36m.npz`; returns its path.

  The 3D file is found by `h36m.find_file` (also `data_3d_h36m_train.npz`).

  Raises DataError for a bad 3D file, a subject without calibration, or an
  existing output without `overwrite`.
  """
  root = Path(root)
  src, dst = h36m.find_file(root, h36m.FILE_3D), root / h36m.file_2d("gt")
  if dst.exists() and not overwrite:
    raise DataError(f"{dst}: already exists (pass --overwrite to replace it)")
  positions_3d = h36m.read_positions_3d(src)
  unknown = [s for s in positions_3d if s not in cams.SUBJECTS]
  if unknown:
    raise DataError(f"{src}: no camera calibration for subject(s) {', '.join(unknown)}")
  positions_2d = project_positions(positions_3d, progress=progress)
  try:
    save_2d(dst, positions_2d, compress=compress)
  except OSError as e:
    raise DataError(f"{dst}: cannot write ({e.strerror or e})") from None
  return dst


def _flags() -> flags.FlagValues:
  fv = flags.FlagValues()
  flags.DEFINE_string("root", None, "Folder holding data_3d_h36m.npz.", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing output.", flag_values=fv)
  flags.DEFINE_bool("compress", False, "np.savez_compressed (slow, -15%).", flag_values=fv)
  return fv


def main(argv=None) -> int:
  """Command line (see the module docstring); `argv` without the program name."""
  return cli.write_command(_flags(), argv, __doc__, lambda fv: prepare(
      fv.root, overwrite=fv.overwrite, compress=fv.compress))


if __name__ == "__main__":
  sys.exit(main())
