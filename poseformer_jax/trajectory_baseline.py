"""The no-learning trajectory to beat: a pinhole camera and the mean skeleton's size.

A skeleton whose bones sum to L metres at depth Z projects to bones summing to
about L / Z in rays (pixels over the focal length), so ``Z = k L / l`` with l
the frame's summed 2D bone lengths in rays, L the training subjects' mean summed
bone length and k (below 1: projection shortens bones) the median of
``Z_true l / L`` over the training frames. The root is its observed ray at that
depth. Camera-independent like the model (it reads rays), and as blind to the
subject's size. `PinholeBaseline` answers like a trajectory `Predictor`, so
`evaluation.evaluate` scores it with the same protocol:

    python eval.py --trajectory_baseline=pinhole --config=configs/h36m_trajectory.py \\
        --config.data.root=data
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError


def summed_bones(points: np.ndarray) -> np.ndarray:
  """(..., 17, C) joints (any units, C = 2 or 3) -> (...,) summed bone lengths."""
  child, parent = (np.array(a) for a in zip(*skeleton.bones()))
  diff = np.asarray(points, np.float64)[..., child, :] - np.asarray(points, np.float64)[..., parent, :]
  return np.linalg.norm(diff, axis=-1).sum(-1)


@dataclasses.dataclass(frozen=True)
class PinholeBaseline:
  """Root depth from the 2D skeleton's size: ``Z = k L / l`` (see the module docstring).

  Attributes:
    bones_m: L, the training subjects' mean summed bone length (metres).
    factor: k, the calibration of projected to true bone lengths.
    root_joint: the joint whose ray gives the root's direction.
  """

  bones_m: float
  factor: float
  root_joint: int = 0

  @classmethod
  def fit(cls, sequences: Sequence, root_joint: int = 0) -> "PinholeBaseline":
    """Calibrates L and k on training sequences (with positions_3d, rays_2d, root_3d)."""
    lengths, ratios = [], []
    for s in sequences:
      if s.rays_2d is None or s.root_3d is None or s.positions_3d is None:
        raise DataError(f"{s.subject} {s.action}: the pinhole baseline needs rays and roots")
      big = summed_bones(s.positions_3d)
      lengths.append(big)
      ratios.append(np.asarray(s.root_3d)[:, 2] * summed_bones(s.rays_2d) / big)
    if not lengths:
      raise DataError("no training sequences to calibrate the pinhole baseline on")
    return cls(bones_m=float(np.mean(np.concatenate(lengths))),
               factor=float(np.median(np.concatenate(ratios))), root_joint=root_joint)

  def roots(self, rays: np.ndarray) -> np.ndarray:
    """(T, J, 2) rays -> (T, 3) camera-frame roots, metres."""
    rays = np.asarray(rays, np.float64)
    depth = self.factor * self.bones_m / np.maximum(summed_bones(rays), 1e-9)
    root = rays[:, self.root_joint]
    return np.concatenate([root * depth[:, None], depth[:, None]], axis=-1)

  def predict_sequences(self, sequences: Sequence[np.ndarray], *,
                        progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """As `inference.Predictor.predict_sequences` of a trajectory model: (T, 1, 3) each."""
    out, done = [], 0
    for rays in sequences:
      out.append(self.roots(rays)[:, None].astype(np.float32))
      done += len(rays)
      if progress is not None:
        progress(done)
    return out
