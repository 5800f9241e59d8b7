"""Detector-shaped training noise: per-joint deviations measured from a detector, swaps."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import augment, config_lib
from poseformer_jax.data import dataset


def test_joint_error_std_matches_pairs_by_recording(h36m_data_cfg):
  truth, _ = dataset.load_sequences(h36m_data_cfg, "train")
  rng = np.random.default_rng(0)
  scale = np.linspace(0.001, 0.02, 17)[:, None] * np.array([1.0, 2.0])
  detected = [dataclasses.replace(s, keypoints_2d=s.keypoints_2d + scale * rng.standard_normal(
      s.keypoints_2d.shape)) for s in reversed(truth)]            # order does not matter
  std = augment.joint_error_std(detected, truth)
  np.testing.assert_allclose(std, scale, rtol=0.05)
  with pytest.raises(augment.ConfigError, match="match none"):
    augment.joint_error_std([dataclasses.replace(truth[0], subject="S99")], truth)


def test_detector_noise_has_each_joints_spread_and_swaps_partners():
  b, f, j = 4000, 3, 17
  x = jnp.zeros((b, f, j, 2)).at[..., 1, 0].set(1.0)               # joint 1 (right hip) at x=1
  std = np.linspace(0.001, 0.02, j)[:, None] * np.array([1.0, 2.0])
  quiet = augment.DetectorNoise(joint_std=tuple(std.reshape(-1)), prob=1.0)
  noisy, _ = quiet.apply(x, jax.random.PRNGKey(0))
  err = np.asarray(noisy - x).reshape(-1, j, 2)
  np.testing.assert_allclose(err.std(0), std, rtol=0.06)
  # Half of the variance is shared by the frames of a window (a detector's lasting bias).
  d = np.asarray(noisy - x)
  corr = np.corrcoef(d[:, 0, 16, 1], d[:, 1, 16, 1])[0, 1]
  assert 0.4 < corr < 0.6
  half = augment.DetectorNoise(joint_std=tuple(std.reshape(-1)), prob=0.5)
  touched = np.abs(np.asarray(half.apply(x, jax.random.PRNGKey(1))[0] - x)).max(axis=(1, 2, 3)) > 0
  assert 0.45 < touched.mean() < 0.55
  swapping = augment.DetectorNoise(joint_std=(0.0,) * (2 * j), prob=1.0, swap_prob=0.25,
                                   pairs=((4, 1),))
  out = np.asarray(swapping.apply(x, jax.random.PRNGKey(2))[0])
  moved = out[..., 4, 0] == 1.0                                    # hip 1's value now at joint 4
  assert 0.22 < moved.mean() < 0.28
  np.testing.assert_array_equal(out[..., 1, 0], 1.0 - moved)
  with pytest.raises(augment.ConfigError, match="joints"):
    quiet.apply(jnp.zeros((1, 3, 5, 2)), jax.random.PRNGKey(0))


def test_from_config_measures_the_named_source(h36m_data_cfg):
  cfg = h36m_data_cfg
  assert augment.from_config(cfg) is None
  cfg.keypoints, cfg.joint_noise, cfg.swap_prob = "gt", "cpn_ft_h36m_dbb", 0.01
  noise = augment.from_config(cfg)
  std = np.asarray(noise.joint_std).reshape(17, 2)
  assert (std > 0).all() and noise.swap_prob == 0.01 and len(noise.pairs) == 6
  cfg.joint_noise_scale = 2.0
  np.testing.assert_allclose(np.asarray(augment.from_config(cfg).joint_std), 2 * std.reshape(-1),
                             rtol=1e-9)
  assert config_lib.base_config().data.joint_noise == ""
