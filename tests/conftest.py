"""Shared pytest fixtures and utilities. Keep each fixture small and documented; a fixture that
writes files is built once for the whole suite (``scope="package"``: this folder).

Optional dependencies (torch, tensorflow, onnx, mediapipe, a browser, ...) are asked for with
`require` / `require_executable`, never with ``pytest.importorskip``: on a user's machine a
missing one skips with its reason, but under ``CI=true`` (as `.ci/run` sets) it fails the run,
so a broken install cannot make the parity tests vanish. The ``../shared/data`` skips stay.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"   # ../shared/data relative to the repo root

# Small synthetic Human3.6M: 2 train + 2 test subjects, 2 actions each, 120 frames, 4 cameras.
SYNTHETIC_H36M = dict(subjects=("S1", "S5", "S9", "S11"), actions_per_subject=2, frames=120, seed=0)


def in_ci() -> bool:
  """Whether the environment variable ``CI`` is set to a true value (``true``, ``1``, ...)."""
  return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def missing(reason: str):
  """A test cannot run for want of `reason`: skip it (also from module level), or under
  ``CI=true`` fail it (at collection when called from module level)."""
  if in_ci():
    pytest.fail(f"{reason} [CI=true: optional dependencies are required]", pytrace=False)
  pytest.skip(reason, allow_module_level=True)


def require(module: str, hint: str = "make install-test") -> ModuleType:
  """The imported `module`, or a skip (a failure under ``CI=true``) naming it and `hint`."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    error = e
  missing(f"{module} is not importable ({error}); {hint}")


def require_executable(*names: str, hint: str = "") -> str:
  """The path of the first of `names` (a command on PATH or a path) that is an executable
  file, or a skip (a failure under ``CI=true``) naming them and `hint`."""
  for name in names:
    found = shutil.which(name)
    if found:
      return found
  missing(f"no executable {' or '.join(names)}" + (f"; {hint}" if hint else ""))


@pytest.fixture(scope="package")
def synthetic_h36m_root(tmp_path_factory) -> Path:
  """Folder with synthetic data_3d_h36m.npz, data_2d_h36m_gt.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz.

  Read-only for tests: copy it (or write into your own tmp_path) before modifying files.
  """
  from poseformer_jax.data import synthetic
  root = tmp_path_factory.mktemp("h36m_synthetic")
  synthetic.write_h36m(root, **SYNTHETIC_H36M)
  return root


REAL_H36M_3D = SHARED_DATA / "h36m" / "data_3d_h36m_train.npz"


@pytest.fixture(scope="package")
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
