"""Writes the ground-truth 2D file `data_2d_h36m_gt.npz` from `data_3d_h36m.npz`.

    python -m poseformer_jax.data.prepare_h36m --root DIR [--overwrite] [--compress]

Each subject's mocap (32 joints, world metres) is reduced to 17 joints, moved
into each of its four cameras' frames and projected with the full distortion
model (`cameras.project_camera`), giving pixels. The output is exactly the
VideoPose3D layout, so upstream code can read it:

    positions_2d = {subject: {action: [cam0, cam1, cam2, cam3]}}, each (N, 17, 2) float32 pixels
    metadata = {'layout_name': 'h36m', 'num_joints': 17,
                'keypoints_symmetry': [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

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
    from tqdm import tqdm
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

  Raises DataError for a bad 3D file, a subject without calibration, or an
  existing output without `overwrite`.
  """
  root = Path(root)
  src, dst = root / h36m.FILE_3D, root / h36m.file_2d("gt")
  if dst.exists() and not overwrite:
    raise DataError(f"{dst}: already exists (pass --overwrite to replace it)")
  positions_3d = h36m.read_positions_3d(src)
  unknown = [s for s in positions_3d if s not in cams.SUBJECTS]
  if unknown:
    raise DataError(f"{src}: no camera calibration for subject(s) {', '.join(unknown)}")
  save_2d(dst, project_positions(positions_3d, progress=progress), compress=compress)
  return dst


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", required=True, help="folder holding data_3d_h36m.npz")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
  parser.add_argument("--compress", action="store_true", help="np.savez_compressed (slow, -15%%)")
  args = parser.parse_args(argv)
  try:
    dst = prepare(args.root, overwrite=args.overwrite, compress=args.compress)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {dst}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
