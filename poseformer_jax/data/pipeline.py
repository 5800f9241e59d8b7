"""The training input pipeline: shuffled, flip-augmented, sharded windows.

Samples: every frame of every sequence (`SequenceBank` order); with `flip`
each frame appears twice, plain (ids 0..N-1) and mirrored (ids N..2N-1), so
an epoch has 2N samples, as upstream's generator. Per epoch the sample ids
are shuffled with `np.random.default_rng([seed, epoch]).permutation`; global
step k takes ids [k*G, (k+1)*G) of that permutation (G = global batch; the
last partial batch is dropped), and process p takes the contiguous slice
[p*b, (p+1)*b) of the global batch (b = G / process_count), so
`jax.make_array_from_process_local_data` reassembles exactly the global
batch. Everything is a pure function of (seed, epoch, step): `epoch(e,
start_step=k)` resumes mid-epoch exactly.

Batches: {'inputs': (b, F, J, 2) float32 normalised 2D windows centred on the
sample's frame, edge-padded at sequence borders; 'targets': (b, 1, J, 3)
float32 metres, root-relative 3D of the centre frame}. Windows are gathered
by index arithmetic (`windows.SequenceBank.index`) from one contiguous array
holding the 2D of all sequences followed by its mirrored copy (`flip_2d`,
built once: 2x the 2D memory, no per-batch flip of windows); the few 3D
targets are mirrored per batch with `flip_3d`.

Backends: 'numpy' (a background thread gathers up to `prefetch` batches
ahead; needs no TensorFlow) and 'tf' (tf.data: range over steps -> map doing
the same gather, parallel, deterministic order -> prefetch; TensorFlow is
imported only here). Both yield identical numpy batches.
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.util
from typing import Iterator, Sequence as Seq

import numpy as np

from poseformer_jax.data import skeleton
from poseformer_jax.data.windows import SequenceBank
from poseformer_jax.errors import ConfigError


def _import_tf():
  """Imports TensorFlow for tf.data only, keeping it off any GPU (JAX owns those)."""
  try:
    import tensorflow as tf
  except ImportError as e:  # pragma: no cover - depends on the install
    raise ConfigError("data.backend='tf' needs TensorFlow (pip install 'poseformer-jax[data]'); "
                      "use data.backend='numpy' without it") from e
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # already initialised; fine
    pass
  return tf


def available_backend(backend: str) -> str:
  """`backend` ('tf' | 'numpy'), falling back to 'numpy' when TensorFlow is not installed."""
  if backend == "tf" and importlib.util.find_spec("tensorflow") is None:
    return "numpy"
  return backend


def _aligned_empty(shape: tuple, align: int = 64) -> np.ndarray:
  """Uninitialised float32 array whose data starts on an `align`-byte boundary.

  TensorFlow adopts aligned numpy buffers without copying (`tf.numpy_function`
  outputs); an unaligned 34 MB batch would cost an extra copy per step.
  """
  nbytes = int(np.prod(shape)) * 4
  raw = np.empty(nbytes + align, np.uint8)
  offset = (-raw.ctypes.data) % align
  return raw[offset:offset + nbytes].view(np.float32).reshape(shape)


class TrainPipeline:
  """Training batches for one process. See the module docstring for the sample order.

  Args:
    sequences: `dataset.Sequence`s with `positions_3d`.
    info: `dataset.DatasetInfo` (flip partners: kps_* for 2D, joints_* for 3D).
    num_frames: F, odd receptive field.
    global_batch: G, samples per global step over all processes.
    seed: shuffle seed; the order is a function of (seed, epoch) only.
    flip: add a mirrored copy of every sample.
    process_index, process_count: this process's share (`jax.process_index()` / `process_count()`).
    backend: 'tf' or 'numpy'.
    prefetch: batches prepared ahead of the consumer (0: none).
  Attributes:
    steps_per_epoch: global steps per epoch, num_samples // G (last partial batch dropped).
    local_batch: G // process_count.
    num_samples: samples per epoch (2N with flip).
  """

  def __init__(self, sequences: Seq, info, *, num_frames: int, global_batch: int, seed: int,
               flip: bool = True, process_index: int = 0, process_count: int = 1,
               backend: str = "tf", prefetch: int = 2):
    if num_frames < 1 or num_frames % 2 == 0:
      raise ConfigError(f"num_frames must be odd and >= 1, got {num_frames}")
    if process_count < 1 or not 0 <= process_index < process_count:
      raise ConfigError(f"bad process_index {process_index} / process_count {process_count}")
    if global_batch < 1 or global_batch % process_count:
      raise ConfigError(f"global batch {global_batch} must be a positive multiple of the "
                        f"process count {process_count}")
    if backend not in ("tf", "numpy"):
      raise ConfigError(f"data.backend must be 'tf' or 'numpy', got {backend!r}")
    if not sequences or any(s.positions_3d is None for s in sequences):
      raise ConfigError("training needs at least one sequence, each with positions_3d")
    self.num_frames, self.pad = num_frames, (num_frames - 1) // 2
    self.global_batch, self.local_batch = global_batch, global_batch // process_count
    self.seed, self.flip, self.backend, self.prefetch = seed, flip, backend, max(0, int(prefetch))
    self.process_index, self.process_count = process_index, process_count
    self._joints_left, self._joints_right = tuple(info.joints_left), tuple(info.joints_right)

    self._bank = SequenceBank([np.asarray(s.keypoints_2d, np.float32) for s in sequences])
    rows = self._bank.num_samples
    # 2D rows [0, N) plain and [N, 2N) mirrored, contiguous; the bank shares the plain half.
    kps = np.empty(((2 if flip else 1) * rows,) + self._bank.data.shape[1:], np.float32)
    kps[:rows] = self._bank.data
    if flip:
      kps[rows:] = skeleton.flip_2d(kps[:rows], info.kps_left, info.kps_right)
    self._bank.data = kps[:rows]
    # Each row as one opaque item, so np.take copies whole rows (the fastest gather).
    self._rows = kps.reshape(len(kps), -1).view(np.dtype((np.void, kps[0].nbytes))).reshape(-1)
    self._kps_shape = kps.shape[1:]
    self._pos = np.concatenate([np.asarray(s.positions_3d, np.float32) for s in sequences])
    if len(self._pos) != rows:
      raise ConfigError("positions_3d and keypoints_2d differ in frames")
    self.num_base = rows
    self.num_samples = rows * (2 if flip else 1)
    self.steps_per_epoch = self.num_samples // global_batch
    if self.steps_per_epoch < 1:
      raise ConfigError(f"{self.num_samples} samples per epoch are fewer than one global batch "
                        f"of {global_batch}")
    self._perm_cache: tuple[int, np.ndarray] | None = None

  # ------------------------------------------------------------ sample order

  def permutation(self, epoch: int) -> np.ndarray:
    """(num_samples,) int64 sample ids in the order of `epoch` (cached for the last epoch)."""
    if self._perm_cache is None or self._perm_cache[0] != epoch:
      perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
      self._perm_cache = (epoch, perm)
    return self._perm_cache[1]

  def sample_ids(self, epoch: int, step: int) -> np.ndarray:
    """(local_batch,) sample ids this process reads at global `step` of `epoch`."""
    first = step * self.global_batch + self.process_index * self.local_batch
    return self.permutation(epoch)[first:first + self.local_batch]

  # ------------------------------------------------------------ gathering

  def gather(self, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Sample ids -> {'inputs': (B, F, J, 2), 'targets': (B, 1, J, 3)} float32."""
    ids = np.asarray(ids, np.int64)
    flipped = ids >= self.num_base
    base = ids - self.num_base * flipped
    rows = self._bank.index(base, self.pad) + (self.num_base * flipped)[:, None]
    inputs = _aligned_empty((len(ids), self.num_frames) + self._kps_shape)
    # mode='clip' (indices are in range anyway) lets np.take write straight into `out`.
    np.take(self._rows, rows.reshape(-1), out=inputs.reshape(-1).view(self._rows.dtype), mode="clip")
    targets = np.take(self._pos, base, axis=0)
    if flipped.any():
      targets[flipped] = skeleton.flip_3d(targets[flipped], self._joints_left, self._joints_right)
    return {"inputs": inputs, "targets": targets[:, None]}

  def batch(self, epoch: int, step: int) -> dict[str, np.ndarray]:
    """This process's batch at global `step` of `epoch` (numpy, synchronous)."""
    return self.gather(self.sample_ids(epoch, step))

  # ------------------------------------------------------------ iteration

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
    """Batches of global steps start_step .. steps_per_epoch-1 of `epoch`, in order."""
    if not 0 <= start_step <= self.steps_per_epoch:
      raise ConfigError(f"start_step {start_step} outside 0..{self.steps_per_epoch}")
    self.permutation(epoch)  # compute once, before any worker needs it
    if self.backend == "tf":
      return self._epoch_tf(epoch, start_step)
    return self._epoch_numpy(epoch, start_step)

  def _epoch_numpy(self, epoch: int, start_step: int) -> Iterator[dict]:
    steps = range(start_step, self.steps_per_epoch)
    if self.prefetch == 0:
      for step in steps:
        yield self.batch(epoch, step)
      return
    # np.take releases the GIL, so a worker thread overlaps gathering with the consumer.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
      pending = collections.deque()
      it = iter(steps)
      try:
        for step in it:
          pending.append(pool.submit(self.batch, epoch, step))
          if len(pending) > self.prefetch:
            yield pending.popleft().result()
        while pending:
          yield pending.popleft().result()
      finally:
        for f in pending:
          f.cancel()

  def _epoch_tf(self, epoch: int, start_step: int) -> Iterator[dict]:
    tf = _import_tf()
    perm = self.permutation(epoch)
    b, F = self.local_batch, self.num_frames
    in_shape = (b, F) + self._kps_shape
    tgt_shape = (b, 1, self._pos.shape[1], 3)

    def gather_step(step):
      first = int(step) * self.global_batch + self.process_index * b
      out = self.gather(perm[first:first + b])
      return out["inputs"], out["targets"]

    def fn(step):
      inputs, targets = tf.numpy_function(gather_step, [step], (tf.float32, tf.float32),
                                          stateful=False)
      return {"inputs": tf.ensure_shape(inputs, in_shape),
              "targets": tf.ensure_shape(targets, tgt_shape)}

    ds = tf.data.Dataset.range(start_step, self.steps_per_epoch)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if self.prefetch:
      ds = ds.prefetch(self.prefetch)
    yield from ds.as_numpy_iterator()
