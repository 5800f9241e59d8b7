"""Missing 2D joints (NaN): the detector's low-confidence estimates, then interpolation along time.

A person was found, so a person is lifted, in three steps for each joint:

1. `use_estimates` — a joint that is never confident in the clip (missing in
   every frame once low confidences are dropped) takes the detector's own
   estimate of it, whatever its confidence; these positions are marked
   ``low_confidence``.
2. `fill_gaps` — every joint is filled along time: between two frames where
   it is present, linearly in time (x and y separately); before the first /
   after the last present frame, with the nearest present value (hold). A
   frame with no detection at all is filled joint by joint from its
   neighbours.
3. `fill_gaps` with ``parents`` — a joint present in no frame at all (not even
   a low-confidence estimate: a file that writes (0, 0) for it, say) is placed
   on the nearest joint along the skeleton that is present (`nearest_present`):
   its bone then has length zero. Steps 2 and 3 are marked ``filled``.
"""

from __future__ import annotations

import collections

import numpy as np

from poseformer_jax.errors import DataError


def use_estimates(keypoints, estimates) -> tuple[np.ndarray, np.ndarray]:
  """The low-confidence fallback (step 1 of the module doc).

  Args:
    keypoints: (T, J, 2) pixels, NaN where missing or below the confidence threshold.
    estimates: (T, J, 2) the detector's positions whatever their confidence, NaN where it
      gave none (the same keypoints read with no threshold).
  Returns:
    ``(keypoints, low_confidence)``: a copy where every joint missing in all T frames
    holds its estimates, and (T, J) bool, True where an estimate went in.
  """
  x = np.array(keypoints, np.float64)
  est = np.asarray(estimates, np.float64)
  if est.shape != x.shape:
    raise DataError(f"estimates {est.shape} do not match keypoints {x.shape}")
  never = np.isnan(x).any(-1).all(0)  # (J,)
  low = never[None, :] & np.isfinite(est).all(-1)
  x[low] = est[low]
  return x, low


def nearest_present(joint: int, present, parents) -> int | None:
  """The joint nearest to `joint` along the skeleton (`parents`, -1 for the root) among
  those `present` ((J,) bool): fewest bones away, a parent before children; None if none."""
  neighbours: dict[int, list[int]] = {j: [] for j in range(len(parents))}
  for child, parent in enumerate(parents):
    if parent >= 0:
      neighbours[child].append(parent)
      neighbours[parent].append(child)
  seen, queue = {joint}, collections.deque([joint])
  while queue:  # breadth first: the first present joint is one of the nearest
    current = queue.popleft()
    if current != joint and present[current]:
      return current
    for k in sorted(neighbours[current], key=lambda k: (k != parents[current], k)):
      if k not in seen:
        seen.add(k)
        queue.append(k)
  return None


def fill_gaps(keypoints: np.ndarray, *, parents=None, joint_names=None,
              source: str = "keypoints") -> tuple[np.ndarray, np.ndarray]:
  """Interpolates NaN entries of a (T, J, 2) keypoint array along time.

  A joint counts as missing in a frame when either coordinate is NaN.

  Args:
    keypoints: (T, J, 2), NaN where missing.
    parents: the skeleton's parent of each joint (-1 for the root): a joint missing
      in every frame is placed on `nearest_present` (step 3 of the module doc).
      Without it such a joint is an error.
    joint_names: optional J names, for the error message.
    source: what to name in error messages (e.g. the file).
  Returns:
    ``(filled, mask)``: filled (T, J, 2) float64 without NaN, and mask (T, J)
    bool, True where a value was filled in. ``mask.any(1)`` flags the frames
    that were (partly) filled; see `filled_frames`.
  Raises:
    DataError: a non-finite value other than NaN (inf), no usable frame at all,
      or (without `parents`) a joint missing in every frame.
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
  never = missing.all(0)
  if never.any() and parents is None:
    names = [joint_names[j] if joint_names is not None else str(j) for j in np.flatnonzero(never)]
    raise DataError(f"{source}: joint(s) {', '.join(names)} missing in every frame; nothing to "
                    "interpolate from (check the format or lower the confidence threshold)")
  x[missing] = np.nan
  t = np.arange(x.shape[0], dtype=np.float64)
  for j in np.flatnonzero(missing.any(0) & ~never):
    ok = ~missing[:, j]
    for c in range(2):
      # np.interp holds the end values outside the known range: nearest valid at the edges.
      x[:, j, c] = np.interp(t, t[ok], x[ok, j, c])
  for j in np.flatnonzero(never):
    x[:, j] = x[:, nearest_present(j, ~never, parents)]
  return x, missing


def settled(keypoints) -> int:
  """How many leading frames of a clip that is still growing are filled for good.

  keypoints: (T, J, 2), NaN where missing (the first T frames so far). The first
  ``settled`` frames of ``fill_gaps(keypoints)`` are those of the whole clip, whatever
  frames follow: they lie before each joint's last presence, so more frames change
  neither `use_estimates` (every joint was present) nor `fill_gaps` (each of their gaps
  is closed; interpolation only uses the nearest present frames). 0 while some joint has
  not been present yet.
  """
  present = ~np.isnan(np.asarray(keypoints, np.float64)).any(-1)  # (T, J)
  if present.shape[0] == 0 or not present.any(0).all():
    return 0
  last = present.shape[0] - 1 - np.argmax(present[::-1], axis=0)  # (J,)
  return int(last.min()) + 1


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
