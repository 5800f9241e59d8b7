"""A small synthetic MPI-INF-3DHP look-alike, in exactly the P-STMO file layout.

    python -m poseformer_jax.data.synthetic_3dhp --root DIR

writes `DIR/data_train_3dhp.npz` ({"S1 Seq1": [{"0": {'data_3d', 'data_2d'}, ...}, fps]})
and `DIR/data_test_3dhp.npz` ({"TS1": {'data_3d', 'data_2d', 'valid'}} for
TS1..TS6), each under the one pickled key `data`. 3D is in millimetres in
the camera frame, 2D in pixels from a pinhole projection into 2048x2048
images (train, TS1-TS4) or 1920x1080 images (TS5, TS6). Bodies and motion
come from the Human3.6M generator (`synthetic.motion`), re-ordered into the
3DHP 17-joint layout (`mpi_inf_3dhp.JOINT_NAMES`, root 14). Each test
sequence has a few runs of invalid frames (`valid` 0), whose 3D is
deliberately corrupted (as unreliable annotations would be), so forgetting
the mask shows. For tests and smoke runs; not a substitute for real data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from absl import flags

from poseformer_jax import cli
from poseformer_jax.data import mpi_inf_3dhp as mpi
from poseformer_jax.data import skeleton, synthetic
from poseformer_jax.data.selection import parse_list
from poseformer_jax.errors import DataError

DEFAULT_SUBJECTS = ("S1", "S2")
DEFAULT_CAMERAS = (0, 4, 8)
FPS = 25

# Human3.6M 17-joint index of each 3DHP joint (head top <- H36M head, neck <- thorax,
# head <- neck/nose; limbs, pelvis and spine map one to one).
H36M_TO_3DHP = (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9)


def h36m_to_3dhp(j17: np.ndarray) -> np.ndarray:
  """(..., 17, C) Human3.6M-ordered joints -> (..., 17, C) 3DHP-ordered joints."""
  return j17[..., H36M_TO_3DHP, :]


def look_at(center: np.ndarray, target=(0.0, 0.0, 0.9)) -> np.ndarray:
  """(3, 3) world-to-camera rotation (rows: image right, image down, forward; world z up)."""
  forward = np.asarray(target, np.float64) - center
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  return np.stack([right, down, forward])


def view(world: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
         ) -> tuple[np.ndarray, np.ndarray]:
  """A random camera looking at the capture area: (T, J, 3) world metres ->
  (2D pixels (T, J, 2), 3D camera-frame millimetres (T, J, 3)), float32."""
  w, h = size
  azimuth, distance = rng.uniform(0, 2 * np.pi), rng.uniform(4.0, 5.0)
  height = rng.uniform(0.8, 1.6)
  center = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), height])
  rot = look_at(center)
  cam = (world - center) @ rot.T                        # metres, camera frame
  focal = 0.35 * min(w, h) * distance / 1.2   # a 2.4 m box at the target fills 70% of the short side
  px = focal * cam[..., :2] / cam[..., 2:3] + np.array([w / 2, h / 2])
  return px.astype(np.float32), (cam * mpi.MM_PER_METRE).astype(np.float32)


def make_train(subjects=DEFAULT_SUBJECTS, seqs_per_subject: int = 2, cameras=DEFAULT_CAMERAS,
               frames: int = 200, seed: int = 0) -> dict:
  """{"S1 Seq1": [{"0": {'data_3d', 'data_2d'}, ...}, fps]}, deterministic in `seed`."""
  out = {}
  for i, subject in enumerate(subjects):
    rng = np.random.default_rng([seed, 1, i])
    scale = rng.uniform(0.92, 1.08)
    for s in range(seqs_per_subject):
      world = h36m_to_3dhp(skeleton.reduce_32_to_17(synthetic.motion(frames, rng, scale)))
      views = {}
      for c in cameras:
        kps, pos = view(world.astype(np.float64), rng, mpi.TRAIN_IMAGE_SIZE)
        views[str(int(c))] = {"data_2d": kps, "data_3d": pos}
      out[f"{subject} Seq{s + 1}"] = [views, FPS]
  return out


def invalid_runs(frames: int, rng: np.random.Generator, runs: int = 3) -> np.ndarray:
  """(frames,) bool mask, True except `runs` short runs (and the first frame) of False."""
  valid = np.ones(frames, bool)
  valid[0] = False
  for _ in range(runs):
    length = int(rng.integers(2, max(3, frames // 15)))
    start = int(rng.integers(1, max(2, frames - length)))
    valid[start:start + length] = False
  return valid


def make_test(frames: int = 150, seed: int = 0, names=mpi.TEST_SEQUENCES) -> dict:
  """{"TS1": {'data_3d', 'data_2d', 'valid' (0/1 float64)}} for `names`, deterministic in `seed`."""
  out = {}
  for i, name in enumerate(names):
    rng = np.random.default_rng([seed, 2, i])
    world = h36m_to_3dhp(skeleton.reduce_32_to_17(
        synthetic.motion(frames, rng, rng.uniform(0.92, 1.08))))
    kps, pos = view(world.astype(np.float64), rng, mpi.image_size_for(name))
    valid = invalid_runs(frames, rng)
    bad = ~valid
    pos[bad] += rng.normal(0, 300.0, pos[bad].shape).astype(np.float32)
    out[name] = {"data_2d": kps, "data_3d": pos, "valid": valid.astype(np.float64)}
  return out


def _save(path: Path, data: dict) -> None:
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez_compressed(tmp, data=data)
  os.replace(tmp, path)


def write_3dhp(root: str | os.PathLike, subjects=DEFAULT_SUBJECTS, seqs_per_subject: int = 2,
               cameras=DEFAULT_CAMERAS, frames: int = 200, test_frames: int = 150,
               seed: int = 0, splits=("train", "test"), overwrite: bool = False
               ) -> dict[str, Path]:
  """Writes the synthetic files of `splits` into `root` (created if needed).

  Args:
    subjects: training subject names ('S1', ...), a sequence or comma-separated string.
    seqs_per_subject, cameras, frames: training size (sequences Seq1.., camera
      numbers, frames per sequence).
    test_frames: frames of each of TS1..TS6.
    seed: everything is deterministic in it.
    splits: which files, 'train' and/or 'test'.
    overwrite: replace existing files (DataError otherwise).
  Returns:
    {'train': path, 'test': path} for the written splits.
  """
  if isinstance(subjects, str):
    subjects = parse_list(subjects)
  if not subjects or seqs_per_subject < 1 or not cameras or frames < 1 or test_frames < 1:
    raise DataError(f"{root}: synthetic 3DHP needs subjects, cameras and positive sizes")
  root = Path(root)
  paths = {"train": root / mpi.FILE_TRAIN, "test": root / mpi.FILE_TEST}
  paths = {k: v for k, v in paths.items() if k in splits}
  existing = [str(p) for p in paths.values() if p.exists()]
  if existing and not overwrite:
    raise DataError(f"{existing[0]}: already exists (synthetic data never overwrites without "
                    "overwrite=True)")
  root.mkdir(parents=True, exist_ok=True)
  if "train" in paths:
    _save(paths["train"], make_train(subjects, seqs_per_subject, cameras, frames, seed))
  if "test" in paths:
    _save(paths["test"], make_test(test_frames, seed))
  return paths


def _flags() -> flags.FlagValues:
  fv = synthetic.writer_flags(DEFAULT_SUBJECTS, 200, "Frames per training sequence.")
  flags.DEFINE_integer("seqs-per-subject", 2, "Training sequences per subject.", flag_values=fv)
  flags.DEFINE_list("cameras", [str(c) for c in DEFAULT_CAMERAS],
                    "Comma-separated camera numbers of the training sequences.", flag_values=fv)
  flags.register_validator("cameras", lambda cams: all(c.strip().isdigit() for c in cams),
                           "--cameras must be comma-separated numbers", flag_values=fv)
  flags.DEFINE_integer("test-frames", 150, "Frames of each of TS1..TS6.", flag_values=fv)
  return fv


def _write(fv: flags.FlagValues) -> dict[str, Path]:
  return write_3dhp(fv.root, fv.subjects, fv["seqs-per-subject"].value,
                    tuple(int(c) for c in fv.cameras), fv.frames, fv["test-frames"].value,
                    fv.seed, overwrite=fv.overwrite)


def main(argv=None) -> int:
  """Command line (see the module docstring); `argv` without the program name."""
  return cli.write_command(_flags(), argv, __doc__, _write)


if __name__ == "__main__":
  sys.exit(main())
