"""Reads PyTorch checkpoints (``torch.save`` zip format) without PyTorch and without running pickled code.

A ``torch.save`` file is a zip archive holding ``<name>/data.pkl`` (the
object tree, pickled) and ``<name>/data/<key>`` (raw tensor storages). The
pickle is read with an allow-list unpickler: only the globals that a
checkpoint legitimately needs are resolved, and to inert stand-ins:

* tensor rebuilds (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``)
  and storage types (``torch.FloatStorage`` ...) -> numpy arrays read from the zip;
* ``collections.OrderedDict`` -> a dict subclass;
* numpy RNG state (``numpy.random._pickle.__randomstate_ctor`` ..., stored by
  upstream training as ``random_state``) -> an `Opaque` placeholder;
* numpy arrays/dtypes and ``_codecs.encode(str, 'latin1')`` (how protocol-2
  pickles store bytes).

Any other global raises `UnsafeCheckpointError`: nothing in the file can
import modules or call functions. Files in the legacy (pre-1.6, non-zip)
format are read with ``torch.load(weights_only=True)`` when PyTorch is
installed, otherwise rejected with a clear message.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes  # shipped with jax
import numpy as np

from poseformer_jax.errors import PoseFormerError

try:  # numpy >= 2
  from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
  from numpy.core.multiarray import _reconstruct as _numpy_reconstruct


class CheckpointReadError(PoseFormerError, ValueError):
  """The file is not a readable PyTorch checkpoint."""


class UnsafeCheckpointError(CheckpointReadError):
  """The pickle asks for a global outside the allow-list."""


class Opaque:
  """Inert stand-in for pickled objects the converter does not need (e.g. RNG states)."""

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def __setstate__(self, state):
    del state

  def __repr__(self):
    return "<opaque>"


_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": ml_dtypes.bfloat16,
}


class _OrderedDict(dict):
  """dict that accepts the attributes pickled with state dicts (``_metadata``)."""


class _StorageType:
  def __init__(self, name: str):
    dtype = _STORAGE_DTYPES[name]
    self.dtype = np.dtype(dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[storage_offset])
  needed = storage_offset + 1 + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else 0
  if needed > storage.size:
    raise CheckpointReadError("tensor extends beyond its storage (truncated or corrupt file)")
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size,
      strides=tuple(s * storage.itemsize for s in stride))
  return np.array(view)  # contiguous copy


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
  del requires_grad, backward_hooks, args
  return data


def _latin1_encode(obj, encoding="latin1", errors="strict"):
  if encoding not in ("latin1", "latin-1"):
    raise UnsafeCheckpointError(f"_codecs.encode with encoding {encoding!r} is not allowed")
  return codecs.encode(obj, encoding, errors)


_ALLOWED = {
    ("collections", "OrderedDict"): lambda: _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_reconstruct,
    ("numpy.random._pickle", "__randomstate_ctor"): lambda: Opaque,
    ("numpy.random._pickle", "__bit_generator_ctor"): lambda: Opaque,
    ("numpy.random._pickle", "__generator_ctor"): lambda: Opaque,
    ("numpy.random._mt19937", "MT19937"): lambda: Opaque,
    ("numpy.random.mtrand", "RandomState"): lambda: Opaque,
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: str):
    super().__init__(io.BytesIO(data))
    self._archive, self._prefix, self._path = archive, prefix, path
    self._storages: dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str):
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    factory = _ALLOWED.get((module, name))
    if factory is None:
      raise UnsafeCheckpointError(
          f"{self._path}: refuses to load pickled global {module}.{name} "
          "(only tensors, dicts and numpy RNG states are allowed)")
    return factory()

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
      raise UnsafeCheckpointError(f"{self._path}: unexpected persistent id {pid!r:.60}")
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _StorageType):
      raise UnsafeCheckpointError(f"{self._path}: unsupported storage type {storage_type!r:.60}")
    if key not in self._storages:
      try:
        raw = self._archive.read(f"{self._prefix}data/{key}")
      except KeyError:
        raise CheckpointReadError(f"{self._path}: storage {key} is missing (truncated file?)") from None
      if len(raw) % storage_type.dtype.itemsize:
        raise CheckpointReadError(f"{self._path}: storage {key} has a partial element (corrupt file)")
      self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype)
    return self._storages[key]


def load(path: str | os.PathLike) -> Any:
  """Loads a ``torch.save`` file into plain Python containers and numpy arrays.

  Tensors become numpy arrays of the same dtype and shape; RNG states become
  `Opaque`. Never executes code from the file. Raises `CheckpointReadError`
  (one-line message naming the file) for anything else.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointReadError(f"{path}: no such file")
  with open(path, "rb") as f:
    magic = f.read(4)
  if magic != b"PK\x03\x04":  # not a zip archive: maybe the legacy torch format
    return _load_legacy(path)
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
      pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
      if not pkl:
        raise CheckpointReadError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
      prefix = pkl[0][: -len("data.pkl")]
      byteorder = f"{prefix}byteorder"
      if byteorder in names and archive.read(byteorder).strip() not in (b"little", b""):
        raise CheckpointReadError(f"{path}: big-endian checkpoints are not supported")
      return _Unpickler(archive.read(pkl[0]), archive, prefix, path).load()
  except PoseFormerError:
    raise
  except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, ValueError, TypeError,
          KeyError, IndexError, OSError, AttributeError, RuntimeError, MemoryError,
          OverflowError, RecursionError) as e:
    raise CheckpointReadError(
        f"{path}: unreadable PyTorch checkpoint (truncated or corrupt: {type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _load_legacy(path: str) -> Any:
  try:
    import torch
  except ImportError:
    raise CheckpointReadError(
        f"{path}: not a zip-format PyTorch checkpoint; legacy-format files need PyTorch "
        "installed (pip install torch), or re-save them with a recent torch") from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for non-checkpoint files
    raise CheckpointReadError(
        f"{path}: not a PyTorch checkpoint ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''})") from None
  return _to_numpy(obj)


def _to_numpy(obj):
  if hasattr(obj, "detach") and hasattr(obj, "numpy"):
    return obj.detach().cpu().numpy()
  if isinstance(obj, dict):
    return {k: _to_numpy(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_to_numpy(v) for v in obj)
  return obj
