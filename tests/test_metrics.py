"""poseformer_jax.metrics against straightforward numpy loops and known cases."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from poseformer_jax import metrics

J = 17


def _poses(rng, *shape):
  """Random non-degenerate poses, metres (about human-sized spread)."""
  return (rng.normal(size=shape + (J, 3)) * 0.3).astype(np.float32)


def _rotation(rng) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] *= -1
  return q


# ---- numpy references (loops, written from the definitions) -----------------

def ref_mpjpe(p, t):
  out = np.zeros(p.shape[:-2])
  for idx in np.ndindex(*p.shape[:-2]):
    out[idx] = np.mean([np.sqrt(np.sum((p[idx][j] - t[idx][j]) ** 2)) for j in range(J)])
  return out


def ref_p_mpjpe(p, t):
  """Umeyama similarity alignment of p onto t per pose, proper rotations only."""
  out = np.zeros(p.shape[:-2])
  for idx in np.ndindex(*p.shape[:-2]):
    y, x = p[idx].astype(np.float64), t[idx].astype(np.float64)
    my, mx = y.mean(0), x.mean(0)
    y0, x0 = y - my, x - mx
    u, s, vt = np.linalg.svd(y0.T @ x0)
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / np.sum(y0 ** 2)
    aligned = scale * y0 @ rot + mx
    out[idx] = np.mean(np.linalg.norm(aligned - x, axis=-1))
  return out


def ref_n_mpjpe(p, t):
  out = np.zeros(p.shape[:-2])
  for idx in np.ndindex(*p.shape[:-2]):
    y, x = p[idx].astype(np.float64), t[idx].astype(np.float64)
    scale = np.sum(y * x) / np.sum(y * y)
    out[idx] = np.mean(np.linalg.norm(scale * y - x, axis=-1))
  return out


def ref_mpjve(p, t, valid=None):
  total, count = 0.0, 0
  for k in range(len(p) - 1):
    if valid is not None and not (valid[k] and valid[k + 1]):
      continue
    for j in range(J):
      total += np.linalg.norm((p[k + 1, j] - p[k, j]) - (t[k + 1, j] - t[k, j]))
      count += 1
  return total / count


def ref_pck(p, t, th):
  out = np.zeros(p.shape[:-2])
  for idx in np.ndindex(*p.shape[:-2]):
    out[idx] = np.mean([np.linalg.norm(p[idx][j] - t[idx][j]) < th for j in range(J)])
  return out


# ---- tests ------------------------------------------------------------------

def test_against_numpy_references_batched():
  rng = np.random.default_rng(0)
  target = _poses(rng, 2, 5)
  pred = target + _poses(rng, 2, 5) * 0.2
  np.testing.assert_allclose(metrics.mpjpe(pred, target), ref_mpjpe(pred, target), rtol=1e-5)
  np.testing.assert_allclose(metrics.p_mpjpe(pred, target), ref_p_mpjpe(pred, target),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(metrics.n_mpjpe(pred, target), ref_n_mpjpe(pred, target),
                             rtol=1e-4, atol=1e-6)
  assert metrics.mpjpe(pred, target).shape == (2, 5)
  assert metrics.p_mpjpe(pred, target).shape == (2, 5)


def test_jit_matches_eager():
  rng = np.random.default_rng(1)
  target = _poses(rng, 8)
  pred = target + _poses(rng, 8) * 0.3
  for fn in (metrics.mpjpe, metrics.p_mpjpe, metrics.n_mpjpe, metrics.pck, metrics.auc):
    np.testing.assert_allclose(jax.jit(fn)(pred, target), fn(pred, target), rtol=1e-5,
                               atol=1e-7)
  np.testing.assert_allclose(jax.jit(metrics.mpjve)(pred, target),
                             metrics.mpjve(pred, target), rtol=1e-5)


def test_identical_poses_give_zero():
  rng = np.random.default_rng(2)
  x = _poses(rng, 4)
  for fn in (metrics.mpjpe, metrics.p_mpjpe, metrics.n_mpjpe):
    np.testing.assert_allclose(fn(x, x), 0.0, atol=1e-6)
  np.testing.assert_allclose(metrics.mpjve(x, x), 0.0, atol=1e-7)
  np.testing.assert_allclose(metrics.pck(x, x), 1.0)
  # AUC: every threshold but 0 mm counts each joint (strict '<').
  np.testing.assert_allclose(metrics.auc(x, x), 30 / 31, rtol=1e-6)


def test_similarity_transform_is_removed_by_p2_only():
  rng = np.random.default_rng(3)
  target = _poses(rng, 6)
  pred = np.stack([1.3 * target[i] @ _rotation(rng) + rng.normal(size=3) for i in range(6)]
                  ).astype(np.float32)
  assert np.all(np.asarray(metrics.mpjpe(pred, target)) > 0.05)
  np.testing.assert_allclose(metrics.p_mpjpe(pred, target), 0.0, atol=2e-6)  # < 0.002 mm
  # Scale only: N-MPJPE removes a pure scaling, not a rotation.
  np.testing.assert_allclose(metrics.n_mpjpe(0.7 * target, target), 0.0, atol=1e-6)
  assert np.all(np.asarray(metrics.n_mpjpe(pred, target)) > 0.01)


def test_reflection_is_not_aligned_away():
  rng = np.random.default_rng(4)
  target = _poses(rng, 5)
  mirrored = target * np.array([-1.0, 1.0, 1.0], np.float32)  # an improper transform
  p2 = np.asarray(metrics.p_mpjpe(mirrored, target))
  np.testing.assert_allclose(p2, ref_p_mpjpe(mirrored, target), rtol=1e-4, atol=1e-6)
  assert np.all(p2 > 0.01), p2  # > 10 mm: a reflection would have given 0


def test_mpjve_against_loop_and_constant_offset():
  rng = np.random.default_rng(5)
  target = _poses(rng, 12)
  pred = target + _poses(rng, 12) * 0.1
  np.testing.assert_allclose(metrics.mpjve(pred, target), ref_mpjve(pred, target), rtol=1e-5)
  valid = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0], bool)
  np.testing.assert_allclose(metrics.mpjve(pred, target, valid),
                             ref_mpjve(pred, target, valid), rtol=1e-5)
  assert metrics.velocity_errors(pred, target).shape == (11,)
  # A constant offset has no velocity error, though P1 sees it.
  offset = target + np.float32(0.02)
  np.testing.assert_allclose(metrics.mpjve(offset, target), 0.0, atol=1e-6)
  np.testing.assert_allclose(metrics.mpjpe(offset, target), 0.02 * np.sqrt(3), rtol=1e-5)
  # Batched over sequences: (S, T, J, 3) -> (S,)
  both = np.stack([pred, offset])
  np.testing.assert_allclose(metrics.mpjve(both, np.stack([target, target])),
                             [ref_mpjve(pred, target), 0.0], rtol=1e-5, atol=1e-6)


def test_pck_and_auc():
  rng = np.random.default_rng(6)
  target = _poses(rng, 3)
  # Every joint displaced by 0..149 mm in a random direction: all within 150 mm.
  n = 3 * J
  direction = rng.normal(size=(n, 3))
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  dist = rng.uniform(0.0, 0.149, size=(n, 1))
  pred = (target.reshape(n, 3) + direction * dist).reshape(target.shape).astype(np.float32)
  np.testing.assert_allclose(metrics.pck(pred, target), 1.0)
  np.testing.assert_allclose(metrics.pck(pred, target, threshold=0.05),
                             ref_pck(pred, target, 0.05), atol=1e-6)
  ref_auc = np.mean([ref_pck(pred, target, th) for th in np.linspace(0, 0.15, 31)], axis=0)
  np.testing.assert_allclose(metrics.auc(pred, target), ref_auc, atol=1e-6)
  # Half the joints 200 mm off: PCK 0.5 exactly for an even J split.
  far = target.copy()
  far[:, :8, 0] += 0.2
  np.testing.assert_allclose(metrics.pck(far, target), 9 / 17, rtol=1e-6)


def test_auc_of_uniform_errors_is_one_half():
  rng = np.random.default_rng(7)
  frames = 4000
  target = np.zeros((frames, J, 3), np.float32)
  err = rng.uniform(0.0, 0.150, size=(frames, J)).astype(np.float32)
  pred = target.copy()
  pred[..., 2] = err
  auc = float(np.mean(metrics.auc(pred, target)))
  assert abs(auc - 0.5) < 0.005, auc
  assert len(metrics.AUC_THRESHOLDS) == 31
  assert metrics.AUC_THRESHOLDS[0] == 0.0 and abs(metrics.AUC_THRESHOLDS[-1] - 0.15) < 1e-12


def test_shape_mismatch_raises():
  with pytest.raises(ValueError):
    metrics.mpjpe(np.zeros((2, J, 3)), np.zeros((3, J, 3)))
