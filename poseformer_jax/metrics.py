"""The one metrics module: 3D pose errors, batched, jit-able (pure jnp).

Every function takes poses of shape (..., J, 3) in metres (any leading batch
axes) and returns one value per pose (per frame) — or per sequence for
`mpjve` — so callers decide how to average (by action, sequence, subject).
Multiply the errors by 1000 for millimetres.

* `mpjpe`   — Protocol #1: mean Euclidean joint distance.
* `p_mpjpe` — Protocol #2: after a per-frame similarity Procrustes alignment
  (rotation, uniform scale, translation) of the prediction onto the target,
  improper rotations (reflections) removed, as upstream.
* `n_mpjpe` — Protocol #3: after the least-squares uniform scale only.
* `mpjve`   — mean error of the first differences along time (velocity).
* `pck`, `auc` — MPI-INF-3DHP: fraction of joints within 150 mm, and PCK
  averaged over the thresholds 0, 5, ..., 150 mm (`AUC_THRESHOLDS`), the set of
  the dataset's official ``mpii_compute_3d_pck.m``. A joint counts when its
  error is strictly below the threshold.

Root trajectories (`root_errors`, numpy): MRPE (mean root position error, RootNet's
definition: the Euclidean distance between the predicted and true root, camera frame)
and its x/y/z parts; `absolute_mpjpe` scores pose + root against the true joints.

For whole evaluations (numpy in, numpy out): `frame_metrics` computes every
frame's errors of a concatenation of sequences in fixed-size jitted chunks
(compiled once), and `sequence_mpjve` reduces its velocity steps per sequence.
"""

from __future__ import annotations

import functools
from typing import Sequence as Seq

import jax
import jax.numpy as jnp
import numpy as np

PCK_THRESHOLD = 0.150  # metres
AUC_THRESHOLDS = tuple(np.linspace(0.0, 0.150, 31).tolist())  # metres: 0, 5, ..., 150 mm
MAX_CHUNK = 1 << 16  # frames per jitted `frame_metrics` call


def joint_errors(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Euclidean distance per joint. (..., J, 3) metres -> (..., J) metres."""
  _check_shapes(pred, target)
  return jnp.linalg.norm(jnp.asarray(pred) - jnp.asarray(target), axis=-1)


def mpjpe(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean per-joint position error (Protocol #1). (..., J, 3) metres -> (...) metres."""
  return jnp.mean(joint_errors(pred, target), axis=-1)


def procrustes_align(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Similarity-aligns each predicted pose onto its target (least squares).

  Finds per pose the rotation R (det +1), scale a and translation t minimising
  |a * pred @ R + t - target|, with the orthogonal-Procrustes SVD; when the
  best orthogonal map is a reflection, the last singular direction is flipped
  so that R stays a proper rotation (and the scale uses the signed trace).

  Args:
    pred, target: (..., J, 3) metres.
  Returns:
    (..., J, 3) the aligned prediction, metres.
  """
  _check_shapes(pred, target)
  pred = jnp.asarray(pred)
  target = jnp.asarray(target)
  mu_t = jnp.mean(target, axis=-2, keepdims=True)
  mu_p = jnp.mean(pred, axis=-2, keepdims=True)
  t0 = target - mu_t
  p0 = pred - mu_p
  norm_t = jnp.sqrt(jnp.sum(t0 ** 2, axis=(-2, -1), keepdims=True))
  norm_p = jnp.sqrt(jnp.sum(p0 ** 2, axis=(-2, -1), keepdims=True))
  t0 = t0 / norm_t
  p0 = p0 / norm_p
  h = jnp.einsum("...ji,...jk->...ik", t0, p0)  # (..., 3, 3) cross-covariance
  u, s, vt = jnp.linalg.svd(h)
  v = jnp.swapaxes(vt, -1, -2)
  ut = jnp.swapaxes(u, -1, -2)
  sign = jnp.sign(jnp.linalg.det(v @ ut))  # (...,) -1 for a reflection
  v = v.at[..., :, -1].multiply(sign[..., None])
  s = s.at[..., -1].multiply(sign)
  rot = v @ ut
  scale = jnp.sum(s, axis=-1)[..., None, None] * norm_t / norm_p
  shift = mu_t - scale * (mu_p @ rot)
  return scale * (pred @ rot) + shift


def p_mpjpe(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Procrustes-aligned MPJPE (Protocol #2). (..., J, 3) metres -> (...) metres."""
  return mpjpe(procrustes_align(pred, target), target)


def n_mpjpe(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Scale-normalised MPJPE (Protocol #3). (..., J, 3) metres -> (...) metres.

  The prediction is multiplied by the per-pose least-squares scale
  ``sum(pred * target) / sum(pred ** 2)`` (no rotation, no translation).
  """
  _check_shapes(pred, target)
  pred = jnp.asarray(pred)
  target = jnp.asarray(target)
  scale = (jnp.sum(pred * target, axis=(-2, -1), keepdims=True)
           / jnp.sum(pred * pred, axis=(-2, -1), keepdims=True))
  return mpjpe(scale * pred, target)


def velocity_errors(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Per-step velocity error. (..., T, J, 3) metres -> (..., T-1) metres per frame.

  Entry k is the mean over joints of |(pred[k+1] - pred[k]) - (target[k+1] - target[k])|.
  """
  _check_shapes(pred, target)
  diff = jnp.asarray(pred) - jnp.asarray(target)
  return jnp.mean(jnp.linalg.norm(jnp.diff(diff, axis=-3), axis=-1), axis=-1)


def mpjve(pred: jax.Array, target: jax.Array, valid: jax.Array | None = None) -> jax.Array:
  """Mean per-joint velocity error of a sequence (first differences along time).

  Args:
    pred: (..., T, J, 3) metres, T >= 2 consecutive frames.
    target: the same shape as `pred`.
    valid: optional (..., T) bool; a step counts only when both of its frames
      are valid.
  Returns:
    (...) metres per frame; NaN when no step counts.
  """
  err = velocity_errors(pred, target)
  if valid is None:
    return jnp.mean(err, axis=-1)
  valid = jnp.asarray(valid, bool)
  steps = (valid[..., 1:] & valid[..., :-1]).astype(err.dtype)
  return jnp.sum(err * steps, axis=-1) / jnp.sum(steps, axis=-1)


def pck(pred: jax.Array, target: jax.Array, threshold: float = PCK_THRESHOLD) -> jax.Array:
  """Percentage of correct keypoints, as a fraction in [0, 1].

  (..., J, 3) metres -> (...): the fraction of joints whose error is strictly
  below `threshold` (metres, default 150 mm).
  """
  return jnp.mean((joint_errors(pred, target) < threshold).astype(jnp.float32), axis=-1)


def auc(pred: jax.Array, target: jax.Array,
        thresholds: tuple[float, ...] = AUC_THRESHOLDS) -> jax.Array:
  """Area under the PCK curve, as a fraction in [0, 1].

  (..., J, 3) metres -> (...): PCK averaged over `thresholds` (metres; default
  0, 5, ..., 150 mm, 31 values).
  """
  err = joint_errors(pred, target)[..., None, :]  # (..., 1, J)
  th = jnp.asarray(thresholds, err.dtype)[:, None]  # (K, 1)
  return jnp.mean((err < th).astype(jnp.float32), axis=(-2, -1))


# -- whole evaluations (numpy) ----------------------------------------------------

def frame_metrics(pred: np.ndarray, target: np.ndarray, pck_joints: Seq[int] | None = None
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Per-frame P1/P2/P3 (PCK/AUC) and per-step velocity errors of a concatenation.

  Runs one jitted function over fixed-size chunks (the last one padded with
  copies of the last frame), so a whole evaluation compiles it once.

  Args:
    pred, target: (N, J, 3) metres, N >= 1.
    pck_joints: joints scored by PCK/AUC (None: no PCK/AUC).
  Returns:
    ({'p1', 'p2', 'p3'[, 'pck', 'auc']}: (N,) float64, errors in metres and
    PCK/AUC as fractions; (N-1,) float64 velocity error of each step
    frame k -> k+1 in metres, see `velocity_errors`).
  """
  n = len(pred)
  chunk = min(MAX_CHUNK, max(256, 1 << (n - 1).bit_length()))
  joints = None if pck_joints is None else tuple(int(j) for j in pck_joints)
  pieces: dict[str, list] = {}
  steps = []
  for first in range(0, n, chunk):
    # chunk + 1 rows: the extra row gives the velocity step out of the chunk's last frame.
    p, t = pred[first:first + chunk + 1], target[first:first + chunk + 1]
    rows = len(p)
    if rows < chunk + 1:
      p = np.concatenate([p, np.broadcast_to(p[-1:], (chunk + 1 - rows,) + p.shape[1:])])
      t = np.concatenate([t, np.broadcast_to(t[-1:], (chunk + 1 - rows,) + t.shape[1:])])
    frame, vel = _chunk_metrics(p, t, joints)
    m = min(chunk, n - first)
    for k, v in frame.items():
      pieces.setdefault(k, []).append(np.asarray(v, np.float64)[:m])
    steps.append(np.asarray(vel, np.float64)[:min(chunk, n - 1 - first)])
  return {k: np.concatenate(v) for k, v in pieces.items()}, np.concatenate(steps)


@functools.partial(jax.jit, static_argnames=("pck_joints",))
def _chunk_metrics(pred, target, pck_joints):
  """(C+1, J, 3) rows -> per-frame metrics of the first C rows, (C,) velocity steps."""
  p, t = pred[:-1], target[:-1]
  out = {"p1": mpjpe(p, t), "p2": p_mpjpe(p, t), "p3": n_mpjpe(p, t)}
  if pck_joints is not None:
    idx = jnp.asarray(pck_joints)
    out["pck"] = pck(p[:, idx], t[:, idx])
    out["auc"] = auc(p[:, idx], t[:, idx])
  return out, velocity_errors(pred, target)


def sequence_mpjve(step_err: np.ndarray, valid: np.ndarray, seq_id: np.ndarray,
                   num_sequences: int) -> np.ndarray:
  """MPJVE of each sequence of a concatenation. Returns (S,) metres, NaN where undefined.

  Args:
    step_err: (N-1,) velocity error of each step k -> k+1, metres (`frame_metrics`).
    valid: (N,) bool; a step counts when both of its frames are valid and
      belong to the same sequence.
    seq_id: (N,) int sequence of each frame.
  """
  step_ok = valid[1:] & valid[:-1] & (seq_id[1:] == seq_id[:-1])
  total = np.bincount(seq_id[:-1], weights=step_err * step_ok, minlength=num_sequences)
  count = np.bincount(seq_id[:-1], weights=step_ok, minlength=num_sequences)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _check_shapes(pred, target) -> None:
  if pred.shape != target.shape or pred.shape[-1:] != (3,):
    raise ValueError(f"expected two (..., J, 3) arrays of one shape, got {pred.shape} "
                     f"and {target.shape}")


def root_errors(pred_root: np.ndarray, true_root: np.ndarray) -> dict[str, np.ndarray]:
  """Per-frame root errors (metres): {'mrpe': Euclidean, 'mrpe_x'/'mrpe_y'/'mrpe_z': |axis|}.

  pred_root, true_root: (N, 3) camera-frame metres (x right, y down, z forward).
  """
  diff = np.asarray(pred_root, np.float64) - np.asarray(true_root, np.float64)
  out = {"mrpe": np.linalg.norm(diff, axis=-1)}
  for i, axis in enumerate("xyz"):
    out[f"mrpe_{axis}"] = np.abs(diff[:, i])
  return out


def absolute_mpjpe(pred_pose: np.ndarray, pred_root: np.ndarray, true_pose: np.ndarray,
                   true_root: np.ndarray) -> np.ndarray:
  """Per-frame MPJPE (metres) of the absolute camera-frame joints, root included.

  pred_pose, true_pose: (N, J, 3) root-relative metres (the predicted root joint is
  taken as 0); pred_root, true_root: (N, 3) camera-frame metres.
  """
  pred = np.asarray(pred_pose, np.float64).copy()
  pred -= pred[:, :1]
  pred += np.asarray(pred_root, np.float64)[:, None]
  true = np.asarray(true_pose, np.float64) + np.asarray(true_root, np.float64)[:, None]
  return np.mean(np.linalg.norm(pred - true, axis=-1), axis=-1)
