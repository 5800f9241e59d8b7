"""Which subjects, actions and frames a reader keeps: the `config.data` selection rules.

Shared by every reader (Human3.6M, MPI-INF-3DHP) and the synthetic writers:

- lists are comma-separated strings ('S1, S5'); `*` selects everything;
- actions are kept by name prefix ('Walk' keeps 'Walking 1' and 'WalkDog');
- `downsample` keeps every k-th frame and `subset` a deterministic contiguous
  fraction of each training sequence, exactly as upstream (the start comes
  from sha256 of the sequence length).
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Iterable

from poseformer_jax.errors import DataError


def parse_list(text: str) -> list[str]:
  """'S1, S5' -> ['S1', 'S5'] (empty items dropped)."""
  return [s.strip() for s in str(text).split(",") if s.strip()]


def natural_key(text: str) -> list:
  """Sort key that orders 'Seq2' before 'Seq10'."""
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def prefix_filter(prefixes: str) -> Callable[[str], bool]:
  """Predicate keeping names that start with one of the comma-separated prefixes ('*' or '' = all)."""
  names = parse_list(prefixes)
  if not names or "*" in names:
    return lambda name: True
  return lambda name: any(name.startswith(p) for p in names)


def select_names(text: str, available: Iterable[str], path, what: str) -> list[str]:
  """'*' -> all of `available` (natural order); 'A,B' -> those, each checked (DataError otherwise)."""
  names = parse_list(text)
  if not names:
    raise DataError(f"{path}: no {what} given")
  available = sorted(dict.fromkeys(available), key=natural_key)
  if "*" in names:
    return available
  for n in names:
    if n not in available:
      raise DataError(f"{path}: {what} {n} not found (file has {', '.join(available)})")
  return names


def deterministic_random(lo: int, hi: int, key: str) -> int:
  """Integer in [lo, hi) derived from sha256(key), as upstream's `subset` start."""
  raw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little", signed=False)
  return int(raw / (2 ** 32 - 1) * (hi - lo)) + lo


def subset_slice(n: int, subset: float, stride: int) -> slice:
  """Frames kept of an n-frame sequence: upstream's `subset` and `downsample` rule."""
  if subset < 1:
    n_frames = int(round(n // stride * subset) * stride)
    start = deterministic_random(0, n - n_frames + 1, str(n))
    return slice(start, start + n_frames, stride)
  return slice(0, n, stride)


def frame_options(data_cfg, path, training: bool) -> tuple[int, float]:
  """(downsample stride, subset fraction) of `data_cfg`, checked; subset is 1 unless `training`."""
  stride = int(data_cfg.downsample)
  subset = float(data_cfg.subset) if training else 1.0
  if stride < 1 or not 0 < subset <= 1:
    raise DataError(f"{path}: downsample must be >= 1 and 0 < subset <= 1 "
                    f"(got {stride}, {subset})")
  return stride, subset
