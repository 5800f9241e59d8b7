"""Filling missing 2D joints (NaN) by interpolation along time.

Each joint is filled independently: between two frames where it is present,
linearly in time (x and y separately); before the first / after the last
present frame, with the nearest present value (hold). A frame with no
detection at all is therefore filled joint by joint from its neighbours.
"""

from __future__ import annotations

import numpy as np

from poseformer_jax.errors import DataError


def fill_gaps(keypoints: np.ndarray, *, joint_names=None, source: str = "keypoints"
              ) -> tuple[np.ndarray, np.ndarray]:
  """Interpolates NaN entries of a (T, J, 2) keypoint array along time.

  A joint counts as missing in a frame when either coordinate is NaN.

  Args:
    keypoints: (T, J, 2), NaN where missing.
    joint_names: optional J names, for the error message.
    source: what to name in error messages (e.g. the file).
  Returns:
    ``(filled, mask)``: filled (T, J, 2) float64 without NaN, and mask (T, J)
    bool, True where a value was filled in. ``mask.any(1)`` flags the frames
    that were (partly) filled; see `filled_frames`.
  Raises:
    DataError: a non-finite value other than NaN (inf), no usable frame at all,
      or a joint missing in every frame (nothing to interpolate from).
  """
  x = np.array(keypoints, np.float64)
  if x.ndim != 3 or x.shape[-1] != 2 or x.shape[0] < 1:
    raise DataError(f"{source}: expected keypoints of shape (T, J, 2) with T >= 1, got {x.shape}")
  if np.isinf(x).any():
    raise DataError(f"{source}: keypoints contain infinite values")
  missing = np.isnan(x).any(-1)  # (T, J)
  if missing.all():
    raise DataError(f"{source}: no usable frames (every joint is missing in every frame; "
                    "check the format or lower the confidence threshold)")
  never = np.flatnonzero(missing.all(0))
  if never.size:
    names = [joint_names[j] if joint_names is not None else str(j) for j in never]
    raise DataError(f"{source}: joint(s) {', '.join(names)} missing in every frame; nothing to "
                    "interpolate from (check the format or lower the confidence threshold)")
  x[missing] = np.nan
  t = np.arange(x.shape[0], dtype=np.float64)
  for j in np.flatnonzero(missing.any(0)):
    ok = ~missing[:, j]
    for c in range(2):
      # np.interp holds the end values outside the known range: nearest valid at the edges.
      x[:, j, c] = np.interp(t, t[ok], x[ok, j, c])
  return x, missing


def filled_frames(mask: np.ndarray) -> np.ndarray:
  """Frame indices with at least one filled joint (mask (T, J) from `fill_gaps`)."""
  return np.flatnonzero(np.asarray(mask).any(-1))


def describe_filled(mask: np.ndarray) -> str:
  """One line for logs: how many frames/joints were filled, and which frames."""
  mask = np.asarray(mask)
  frames = filled_frames(mask)
  if frames.size == 0:
    return f"no gaps: all {mask.shape[0]} frames complete"
  return (f"filled {frames.size} of {mask.shape[0]} frames ({int(mask.sum())} joint positions "
          f"interpolated): frames {_ranges(frames)}")


def _ranges(idx: np.ndarray, limit: int = 12) -> str:
  """[1,2,3,7,9,10] -> '1-3, 7, 9-10' (at most `limit` runs, then '...')."""
  runs = []
  start = prev = int(idx[0])
  for i in map(int, idx[1:]):
    if i != prev + 1:
      runs.append((start, prev))
      start = i
    prev = i
  runs.append((start, prev))
  text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
  return text + (", ..." if len(runs) > limit else "")
