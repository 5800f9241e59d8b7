"""Detector-shaped 2D noise: training inputs that look like a real detector's keypoints.

A detector's errors are not isotropic: Stacked Hourglass on Human3.6M misses wrists
and ankles by 13-19 px (std) but the thorax by 6, places the head 14 px too high on
average, and now and then swaps a left and a right limb. `DetectorNoise` adds
Gaussian noise with each joint's own x/y standard deviation, half of its variance
constant over the window (a detector's bias on a person and a view lasts) and half
fresh in each frame, and swaps left/right partners in single frames, to a random
fraction of the training windows. The per-joint deviations come from a real
detector's errors against the ground truth on the training subjects
(`joint_error_std`), so nothing is tuned by hand: ``data.joint_noise='sh_pt_mpii'``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from poseformer_jax.data import dataset
from poseformer_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DetectorNoise:
  """Hashable (a static argument of the train step).

  joint_std: J x 2 standard deviations (x, y per joint, the model's input units),
    flattened. prob: fraction of windows that get the noise. swap_prob: chance per
    frame and left/right pair that the pair's 2D is swapped (in noisy windows).
    pairs: (left, right) joint indices.
  """

  joint_std: tuple[float, ...]
  prob: float = 0.5
  swap_prob: float = 0.0
  pairs: tuple[tuple[int, int], ...] = ()

  def apply(self, inputs: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, F, J, 2) -> same, noisy; returns (inputs, the rng left over)."""
    b, f, j, _ = inputs.shape
    if len(self.joint_std) != 2 * j:
      raise ConfigError(f"detector noise has {len(self.joint_std) // 2} joints, inputs {j}")
    rng, k_pick, k_bias, k_frame, k_swap = jax.random.split(rng, 5)
    std = jnp.asarray(self.joint_std, inputs.dtype).reshape(1, 1, j, 2) * np.sqrt(0.5)
    noisy = (inputs + std * jax.random.normal(k_bias, (b, 1, j, 2), inputs.dtype)
             + std * jax.random.normal(k_frame, inputs.shape, inputs.dtype))
    if self.swap_prob > 0 and self.pairs:
      left, right = (np.asarray(side) for side in zip(*self.pairs))
      swap = jax.random.bernoulli(k_swap, self.swap_prob, (b, f, len(left), 1))
      a, c = noisy[:, :, left], noisy[:, :, right]
      noisy = noisy.at[:, :, left].set(jnp.where(swap, c, a))
      noisy = noisy.at[:, :, right].set(jnp.where(swap, a, c))
    pick = jax.random.bernoulli(k_pick, self.prob, (b, 1, 1, 1))
    return jnp.where(pick, noisy, inputs), rng


def joint_error_std(detected: Sequence, truth: Sequence) -> np.ndarray:
  """(J, 2) standard deviation of a detector's 2D minus the ground truth's, per joint.

  `detected`, `truth`: `Sequence`s of the same recordings (matched by subject, action
  and camera; the shorter length of a pair counts). Units of their keypoints_2d.
  """
  by_key = {(s.subject, s.action, s.camera): s for s in truth}
  errors = []
  for s in detected:
    t = by_key.get((s.subject, s.action, s.camera))
    if t is not None:
      n = min(len(s), len(t))
      errors.append(np.asarray(s.keypoints_2d[:n], np.float64) - t.keypoints_2d[:n])
  if not errors:
    raise ConfigError("data.joint_noise: the detector's sequences match none of the "
                      "ground-truth sequences (same subjects, actions and cameras)")
  return np.concatenate(errors).std(axis=0)


def from_config(data_cfg) -> DetectorNoise | None:
  """The run's `DetectorNoise` (None unless ``data.joint_noise`` names a 2D source).

  Measures `joint_error_std` of that source against ``data.keypoints`` on the
  training subjects (both loaded here, in the model's input units), times
  ``data.joint_noise_scale``; ``data.joint_noise_prob`` and ``data.swap_prob`` as given;
  the left/right pairs are those of the loaded 2D (`DatasetInfo.kps_left` / `kps_right`).
  """
  source = str(data_cfg.get("joint_noise", "") or "")
  if not source:
    return None
  truth_cfg = data_cfg.copy_and_resolve_references()
  detector_cfg = data_cfg.copy_and_resolve_references()
  truth_cfg.keypoints_mix = detector_cfg.keypoints_mix = ""
  detector_cfg.keypoints = source
  truth, _ = dataset.load_sequences(truth_cfg, "train")
  detected, info = dataset.load_sequences(detector_cfg, "train")
  std = joint_error_std(detected, truth) * float(data_cfg.get("joint_noise_scale", 1.0))
  return DetectorNoise(joint_std=tuple(float(v) for v in std.reshape(-1)),
                       prob=float(data_cfg.get("joint_noise_prob", 0.5)),
                       swap_prob=float(data_cfg.get("swap_prob", 0.0)),
                       pairs=tuple(zip(map(int, info.kps_left), map(int, info.kps_right))))
