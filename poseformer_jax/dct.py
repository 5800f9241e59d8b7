"""DCT-II and its inverse as precomputed matrices.

PoseFormerV2 uses ``torch_dct.dct`` / ``torch_dct.idct`` with ``norm=None``:

    X_k = 2 * sum_n x_n cos(pi * k * (2n + 1) / (2N)),   k = 0..N-1

and the exact inverse. For the short axes of this model (N <= 243) a matrix
product is faster than an FFT on every backend and fuses with the surrounding
matmuls, so both transforms are (N, N) constant matrices built once in float64
and applied with ``einsum`` inside the jitted forward pass.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def _dct_matrix_f64(n: int) -> np.ndarray:
  k = np.arange(n)[:, None]
  m = np.arange(n)[None, :]
  return 2.0 * np.cos(np.pi * k * (2 * m + 1) / (2 * n))


def dct_matrix(n: int, dtype=np.float32) -> np.ndarray:
  """Returns D, shape (n, n), with ``X = D @ x`` the unnormalised DCT-II of x (n,)."""
  if n < 1:
    raise ValueError(f"DCT length must be >= 1, got {n}")
  return _dct_matrix_f64(n).astype(dtype)


@functools.lru_cache(maxsize=None)
def _idct_matrix_f64(n: int) -> np.ndarray:
  # Closed-form inverse of the unnormalised DCT-II: the DCT-III with a halved
  # DC weight, scaled by 1/n.
  m = np.arange(n)[:, None]
  k = np.arange(n)[None, :]
  w = np.where(k == 0, 0.5, 1.0)
  return w * np.cos(np.pi * k * (2 * m + 1) / (2 * n)) / n


def idct_matrix(n: int, dtype=np.float32) -> np.ndarray:
  """Returns D^-1, shape (n, n), with ``x = D^-1 @ X`` (exact inverse of `dct_matrix`)."""
  if n < 1:
    raise ValueError(f"IDCT length must be >= 1, got {n}")
  return _idct_matrix_f64(n).astype(dtype)
