"""Shared pytest fixtures. Keep each fixture small, documented and session-scoped where it writes files."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"   # ../shared/data relative to the repo root

# Small synthetic Human3.6M: 2 train + 2 test subjects, 2 actions each, 120 frames, 4 cameras.
SYNTHETIC_H36M = dict(subjects=("S1", "S5", "S9", "S11"), actions_per_subject=2, frames=120, seed=0)


@pytest.fixture(scope="session")
def synthetic_h36m_root(tmp_path_factory) -> Path:
  """Folder with synthetic data_3d_h36m.npz, data_2d_h36m_gt.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz.

  Read-only for tests: copy it (or write into your own tmp_path) before modifying files.
  """
  from poseformer_jax.data import synthetic
  root = tmp_path_factory.mktemp("h36m_synthetic")
  synthetic.write_h36m(root, **SYNTHETIC_H36M)
  return root


REAL_H36M_3D = SHARED_DATA / "h36m" / "data_3d_h36m_train.npz"


@pytest.fixture(scope="session")
def real_h36m_root(tmp_path_factory) -> Path:
  """A temp folder with the real 3D (../shared, linked as data_3d_h36m.npz) and its prepared
  GT 2D; skips when the shared data is absent. Nothing derived leaves pytest's temp folders."""
  if not REAL_H36M_3D.exists():
    pytest.skip(f"real Human3.6M data not found at {REAL_H36M_3D}")
  from poseformer_jax.data import h36m, prepare_h36m
  root = tmp_path_factory.mktemp("h36m_real")
  (root / h36m.FILE_3D).symlink_to(REAL_H36M_3D)
  assert prepare_h36m.main(["--root", str(root)]) == 0
  return root


@pytest.fixture
def h36m_data_cfg(synthetic_h36m_root):
  """A fresh `config.data` block pointing at the synthetic data (train S1,S5; test S9,S11)."""
  from poseformer_jax import config_lib
  cfg = config_lib.base_config().data
  cfg.root = str(synthetic_h36m_root)
  cfg.subjects_train = "S1,S5"
  cfg.subjects_test = "S9,S11"
  return cfg
