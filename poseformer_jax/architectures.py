"""Every network of the project, built from a config's `model` block.

``model.kind`` says which: 'pose' (default; `model.PoseFormerV2`, root-relative
poses from normalised screen coordinates) or 'trajectory'
(`trajectory.TrajectoryNet`, the root's camera-frame position from rays).
Both take (B, F, J, 2) windows and return (B, 1, output_joints, 3) metres.
"""

from __future__ import annotations

import jax.numpy as jnp

from poseformer_jax import model as model_lib
from poseformer_jax import trajectory

KINDS = ("pose", "trajectory")


def kind_of(model_cfg) -> str:
  """'pose' or 'trajectory' for a config's `model` block (configs without `kind` are pose)."""
  kind = dict(model_cfg).get("kind", "pose")
  if kind not in KINDS:
    raise ValueError(f"model.kind {kind!r} must be one of {KINDS}")
  return kind


def from_config(model_cfg):
  """The network of a config's `model` block (ConfigDict or dict)."""
  if kind_of(model_cfg) == "pose":
    return model_lib.from_config(model_cfg)
  cfg = dict(model_cfg)
  cfg.pop("kind")
  dtype = cfg.pop("dtype", "float32")
  return trajectory.TrajectoryNet(dtype=jnp.dtype(dtype), **cfg)


def is_trajectory(model) -> bool:
  """Whether `model` is a trajectory network (answers roots, reads rays)."""
  return getattr(model, "kind", "pose") == "trajectory"
