"""The dataset contract: what training and evaluation read about data.

`load_sequences(data_cfg, split)` returns one `Sequence` per (subject, action,
camera) with model-ready arrays, plus the `DatasetInfo` describing the
skeleton (both defined in `types`, re-exported here). Readers for each
dataset live in their own module and only read; `load_sequences` dispatches
on `data_cfg.dataset`.

`ensure_synthetic(data_cfg)` is the one place that writes data: with
`data_cfg.synthetic.enabled` it generates the synthetic stand-in files that
are missing from `data_cfg.root` (`synthetic`, `synthetic_3dhp`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from poseformer_jax.data import h36m, mpi_inf_3dhp, skeleton, synthetic, synthetic_3dhp
from poseformer_jax.data.selection import parse_list
from poseformer_jax.data.types import DatasetInfo, Sequence
from poseformer_jax.errors import ConfigError, DataError

__all__ = ["DatasetInfo", "Sequence", "ensure_synthetic", "load_sequences", "trajectory_view"]

READERS = {"h36m": h36m.load, "mpi_inf_3dhp": mpi_inf_3dhp.load}


def ensure_synthetic(data_cfg) -> list[Path]:
  """Writes the synthetic files missing from `data_cfg.root` when `data_cfg.synthetic.enabled`.

  Human3.6M: the three files of `synthetic.write_h36m` when there is no 3D
  file; MPI-INF-3DHP: whichever of the train/test files is missing. Existing
  files are never touched. Returns the paths written (none when disabled or
  complete).
  """
  syn = data_cfg.synthetic
  if not syn.enabled:
    return []
  root = Path(data_cfg.root)
  dataset = getattr(data_cfg, "dataset", "h36m")
  subjects = parse_list(syn.subjects)
  if dataset == "h36m":
    if h36m.find_file(root, h36m.FILE_3D).exists():
      return []
    written = synthetic.write_h36m(root, subjects=subjects,
                                   actions_per_subject=int(syn.actions_per_subject),
                                   frames=int(syn.frames), seed=int(syn.seed))
    return list(written.values())
  if dataset == "mpi_inf_3dhp":
    missing = tuple(split for split, name in (("train", mpi_inf_3dhp.FILE_TRAIN),
                                              ("test", mpi_inf_3dhp.FILE_TEST))
                    if not (root / name).exists())
    if not missing:
      return []
    written = synthetic_3dhp.write_3dhp(root, subjects=subjects,
                                        seqs_per_subject=int(syn.actions_per_subject),
                                        frames=int(syn.frames), seed=int(syn.seed), splits=missing)
    return list(written.values())
  raise ConfigError(f"no synthetic generator for data.dataset {dataset!r}")


def load_sequences(data_cfg, split: str) -> tuple[list[Sequence], DatasetInfo]:
  """Loads the `split` ('train' | 'test') sequences of `data_cfg.dataset`.

  `data_cfg` is the config's `data` block (see `config_lib.base_config`).
  Raises `DataError` for bad files, `ConfigError` for a bad split/dataset.
  """
  if split not in ("train", "test"):
    raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
  dataset = getattr(data_cfg, "dataset", "h36m")
  if dataset not in READERS:
    raise ConfigError(f"unknown data.dataset {dataset!r}; supported: "
                      f"{', '.join(map(repr, READERS))}")
  return READERS[dataset](data_cfg, split)


def subject_sizes(sequences: list[Sequence]) -> dict[str, float]:
  """Each subject's mean summed bone length (metres) over its sequences' 3D frames."""
  sums: dict[str, list] = {}
  for s in sequences:
    if s.positions_3d is not None and s.positions_3d.shape[1] == skeleton.NUM_JOINTS:
      sums.setdefault(s.subject, []).append(skeleton.bone_lengths(s.positions_3d).sum(-1))
  return {k: float(np.mean(np.concatenate(v))) for k, v in sums.items()}


def trajectory_view(sequences: list[Sequence], info: DatasetInfo, reference_bones: float = 0.0
                    ) -> tuple[list[Sequence], DatasetInfo]:
  """The sequences as a trajectory model trains on them: its input and target in the
  fields the training pipeline reads.

  keypoints_2d becomes the rays (T, J, 2) and positions_3d the root's camera-frame
  position (T, 1, 3) metres; the DatasetInfo keeps the 2D flip partners and has
  one 3D joint (mirroring negates its x). With `reference_bones` > 0 each subject's
  roots are scaled by reference_bones / its summed bone length (`subject_sizes`):
  where that subject would stand if it were the reference person's size (same rays),
  so the model learns one person's size, not each training subject's. Raises
  DataError for sequences without rays or roots (no camera calibration).
  """
  sizes = subject_sizes(sequences) if reference_bones > 0 else {}
  out = []
  for s in sequences:
    if s.rays_2d is None or s.root_3d is None:
      raise DataError(f"{s.subject} {s.action} camera {s.camera}: no camera rays / root "
                      "positions, so no trajectory training on this dataset")
    scale = reference_bones / sizes[s.subject] if sizes else 1.0
    out.append(dataclasses.replace(s, keypoints_2d=s.rays_2d,
                                   positions_3d=(np.asarray(s.root_3d) * scale)[:, None]))
  return out, dataclasses.replace(info, root_joint=0, joints_left=(), joints_right=())
