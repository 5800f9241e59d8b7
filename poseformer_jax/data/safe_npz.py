"""Loading `.npz` files whose keys hold pickled dicts, without running pickled code.

The VideoPose3D / P-STMO files store nested dicts of arrays as pickled
object arrays (e.g. `positions_3d`, `positions_2d`, `metadata`). Plain
`np.load(..., allow_pickle=True)` would execute whatever a file's pickle
asks for. `load_npz` instead unpickles only the keys named in `pickled_keys`
and only with `_RestrictedUnpickler`, which resolves nothing but:

- numpy array/scalar reconstruction (`numpy._core.multiarray._reconstruct`,
  `...scalar`, and their pre-2.0 `numpy.core` names), `numpy.ndarray`,
  `numpy.dtype` (and its `numpy.dtypes.*` classes);
- builtins `dict`, `list`, `tuple`, `str`, `int`, `float`, `bool`.

Any other global (a function, a class with side effects) raises `DataError`.
Keys not in `pickled_keys` are read with `allow_pickle=False`.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any, Iterable

import numpy as np
import numpy.dtypes

from poseformer_jax.errors import DataError

try:  # numpy >= 2
  from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
  from numpy.core import multiarray as _multiarray

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "str"): str,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
  _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
  _ALLOWED[(_mod, "scalar")] = _multiarray.scalar


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickler that resolves only the globals in `_ALLOWED` (plus numpy dtype classes)."""

  def find_class(self, module: str, name: str):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == "numpy.dtypes" and name.endswith("DType"):
      cls = getattr(numpy.dtypes, name, None)
      if isinstance(cls, type) and issubclass(cls, np.dtype):
        return cls
    raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _read_pickled(zf: zipfile.ZipFile, member: str) -> Any:
  """Reads one .npy member whose array is an object array, safely."""
  buf = io.BytesIO(zf.read(member))
  version = np.lib.format.read_magic(buf)
  if version == (1, 0):
    shape, _, dtype = np.lib.format.read_array_header_1_0(buf)
  else:
    shape, _, dtype = np.lib.format.read_array_header_2_0(buf)
  if not dtype.hasobject:
    buf.seek(0)
    return np.lib.format.read_array(buf, allow_pickle=False)
  arr = _RestrictedUnpickler(buf, encoding="latin1").load()
  if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
    raise pickle.UnpicklingError("payload is not the object array its header describes")
  return arr


def load_npz(path: str | os.PathLike, pickled_keys: Iterable[str] = (),
             required: Iterable[str] = ()) -> dict[str, Any]:
  """Loads every key of an `.npz` file into a dict.

  Args:
    path: the `.npz` file.
    pickled_keys: keys allowed to hold pickled object arrays; they are
      unpickled with the restricted unpickler, and a 0-d object array (how
      `np.savez` stores a dict) is returned as the object it contains.
    required: keys that must be present.
  Returns:
    {key: numpy array, or the unpickled object for `pickled_keys`}.
  Raises:
    DataError: one line naming `path`: missing or unreadable file, missing
      required key, a disallowed pickle, a pickled key not in `pickled_keys`.
  """
  path = os.fspath(path)
  pickled_keys = set(pickled_keys)
  if not os.path.isfile(path):
    raise DataError(f"{path}: file not found")
  try:
    zf = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise DataError(f"{path}: not a readable .npz file ({e})") from None
  with zf:
    members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
    missing = [k for k in required if k not in members]
    if missing:
      raise DataError(f"{path}: missing key(s) {', '.join(map(repr, missing))}; "
                      f"found {', '.join(map(repr, sorted(members))) or 'none'}")
    out = {}
    for key, member in members.items():
      try:
        if key in pickled_keys:
          arr = _read_pickled(zf, member)
          out[key] = arr.item() if arr.dtype.hasobject and arr.shape == () else arr
        else:
          out[key] = np.lib.format.read_array(io.BytesIO(zf.read(member)), allow_pickle=False)
      except pickle.UnpicklingError as e:
        raise DataError(f"{path}: key {key!r} refused: {e} (only plain containers and numpy "
                        "arrays may be unpickled)") from None
      except ValueError as e:
        if "allow_pickle" in str(e):
          raise DataError(f"{path}: key {key!r} holds pickled objects, which are not expected "
                          "there") from None
        raise DataError(f"{path}: key {key!r} unreadable ({e})") from None
      except Exception as e:  # corrupt member (zlib error, truncated pickle, ...)
        raise DataError(f"{path}: key {key!r} unreadable ({type(e).__name__}: {e})") from None
    return out
