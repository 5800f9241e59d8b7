"""The one forward-pass driver: every frame of a 2D sequence -> its 3D pose.

Shared by evaluation (`poseformer_jax.evaluation`) and video lifting. For each
frame t the network sees the F-frame window centred on t, edge-padded at the
sequence borders (the window row indices come from THE windowing routine,
`poseformer_jax.data.windows`); with test-time flip the mirrored window is
predicted as well, mirrored back and averaged with the plain prediction, as
upstream.

How it stays fast (the network should account for nearly all of the time):

* The 2D sequence goes to the device once; the host only computes (B, F)
  int32 row indices per batch and the device gathers the windows, so no
  (B, F, J, 2) window array is built on the host or copied per batch.
* One jitted forward per batch shape runs plain and flipped windows in a
  single ``model.apply`` (2B rows). The last partial batch is padded up to
  the batch size (its extra rows are dropped), so a whole evaluation compiles
  the forward once.
* Sliding windows share frames: the spatial branch sees each kept frame alone,
  so a batch of consecutive windows runs it once per frame of the batch's span
  (B + f - 1 frames) and gathers each window's f time tokens, instead of
  running it on f frames per window (`PoseFormerV2.frame_tokens`; the spatial
  branch is ~20 % of a 27_3_3 forward, so 27_3_3 and larger save 13-19 %).
* Dispatch is asynchronous: the host prepares batch k+1 while the device
  computes batch k; results are fetched a few batches behind.
* With a `jax.sharding.Mesh` (axis 'data'), windows are split over the
  devices along the batch axis and the parameters are replicated.
"""

from __future__ import annotations

import collections
from typing import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from poseformer_jax import cpu_tuning
from poseformer_jax import model as model_lib
from poseformer_jax.data import skeleton
from poseformer_jax.data import windows
from poseformer_jax.errors import ConfigError, DataError

# Batches dispatched ahead of the one being fetched (bounds device memory).
MAX_IN_FLIGHT = 4

# Rows per network call inside one jitted forward on a CPU: a 2048-row batch
# (1024 windows + flips) in 256-row chunks keeps each layer's activations in
# cache; 27_3_3 at 1024 windows ran 1.2x faster so (benchmarks/README).
CPU_CHUNK_ROWS = 256

# What one more forward pass costs the host (index batch, transfer, dispatch), in
# windows of compute; `Predictor.batch_for` weighs it against padded windows.
PASS_COST_WINDOWS = 16


def default_chunk_rows() -> int:
  """`CPU_CHUNK_ROWS` on a CPU; 0 (one call over the whole batch) on accelerators."""
  return CPU_CHUNK_ROWS if jax.default_backend() == "cpu" else 0


def chunked_apply(model, chunk_rows: int, method=None) -> Callable[..., jax.Array]:
  """The network as a pure (params, *xs) -> y, run over the batch in chunks.

  By default xs is one x (B, F, J, 2), normalised screen coordinates, and y
  (B, 1, J, 3) metres: exactly ``model.apply({'params': params}, x,
  deterministic=True)``; `method` names another of the model's methods (its
  array arguments share the leading axis B). With ``0 < chunk_rows < B`` the
  whole chunks of `chunk_rows` rows go through `jax.lax.map` and the B mod
  `chunk_rows` rows left over through one more call (nothing is padded). Not
  for sharded batches (a chunk would cut across devices), nor for a symbolic
  B (export). The model runs as `cpu_tuning.tuned_model` makes it.
  """
  model = cpu_tuning.tuned_model(model)

  def apply(params, *xs):
    return model.apply({"params": params}, *xs, deterministic=True, method=method)

  def chunked(params, *xs):
    b = xs[0].shape[0]
    if chunk_rows <= 0 or not isinstance(b, int) or b <= chunk_rows:  # symbolic B: exported
      return apply(params, *xs)
    n, whole = b // chunk_rows, b // chunk_rows * chunk_rows
    parts = tuple(x[:whole].reshape((n, chunk_rows) + x.shape[1:]) for x in xs)
    y = jax.lax.map(lambda part: apply(params, *part), parts)
    y = y.reshape((whole,) + y.shape[2:])
    if whole == b:
      return y
    return jnp.concatenate([y, apply(params, *(x[whole:] for x in xs))])

  return chunked


def jit_apply(model, chunk_rows: int | None = None) -> Callable[..., jax.Array]:
  """``jax.jit(model.apply)`` for inference, in its fastest form on this backend.

  apply(variables, x) -> y, x (B, F, J, 2) normalised screen coordinates, y (B, 1, J, 3)
  metres, camera frame, root-relative: ``model.apply(variables, x)``'s values to float32
  rounding. On a CPU the model as `cpu_tuning.tuned_model` makes it, compiled with
  `cpu_tuning.compiler_options("forward")`, batches of more than `chunk_rows` rows (None:
  `default_chunk_rows()`; 0: never) in chunks (`chunked_apply`); elsewhere
  ``jax.jit(model.apply)``. Each batch shape compiles once.
  """
  if chunk_rows is None:
    chunk_rows = default_chunk_rows()
  if chunk_rows < 0:
    raise ConfigError(f"chunk_rows must be >= 0, got {chunk_rows}")
  network = chunked_apply(model, chunk_rows)

  def apply(variables, x):
    return network(variables["params"], x)

  return jax.jit(apply, compiler_options=cpu_tuning.compiler_options("forward"))


def network_functions(model, chunk_rows: int, flip: bool, kps_flip: tuple, joints_flip: tuple,
                      root_joint: int | None) -> tuple[Callable, Callable, Callable]:
  """The pure functions behind every prediction: (forward, forward_rows, gather_rows).

  forward(params, x (B, F, J, 2)) -> (B, J, 3): the network on whole windows, with the
  mirrored copy averaged in when `flip` (kps_flip / joints_flip are the (left, right) 2D
  and 3D index pairs) and `root_joint` set to 0 (None: raw output). forward_rows does the
  same for consecutive windows of one frame array, the spatial branch once per frame;
  gather_rows(data (N, J, 2), idx (B, F), lo) makes its arguments. Shapes and units as in
  `chunked_apply`; rows run in chunks of `chunk_rows`.
  """
  (kps_left, kps_right), (joints_left, joints_right) = kps_flip, joints_flip
  num_joints, kept_frames = int(model.output_joints), int(model.kept_frames)
  first_kept = model_lib.centre_start(model.num_frames, kept_frames)
  network = chunked_apply(model, chunk_rows)
  if shares_frames(model):
    frame_net = chunked_apply(model, chunk_rows, method=type(model).frame_tokens)
    rest_net = chunked_apply(model, chunk_rows, method=type(model).from_time_tokens)

  def average(y, b):
    """(2B or B, 1, J', 3) network output -> (B, J', 3), flip-averaged, root zeroed."""
    if flip:
      y = y.reshape(b, 2, num_joints, 3)
      y = (y[:, 0] + skeleton.flip_3d(y[:, 1], joints_left, joints_right)) / 2
    else:
      y = y[:, 0]
    if root_joint is not None:
      y = y.at[:, root_joint].set(0.0)
    return y

  def with_mirror(x):
    """(B, ...) -> (2B, ...), each row followed by its mirrored copy (with flip).

    Interleaved (not concatenated) so each device keeps its own rows."""
    if not flip:
      return x
    mirrored = skeleton.flip_2d(x, kps_left, kps_right)
    return jnp.stack([x, mirrored], axis=1).reshape((2 * x.shape[0],) + x.shape[1:])

  def forward(params, x):
    """(B, F, J, 2) windows -> (B, J, 3) centre-frame poses, flip-averaged."""
    return average(network(params, with_mirror(x)), x.shape[0])

  def forward_rows(params, frames, x, kept):
    """forward(params, x) with the spatial branch run once per frame.

    frames (S, J, 2) hold every window's f centre frames, at rows kept (B, f)
    of frames; x (B, F, J, 2) the windows themselves (for the DCT branch).
    """
    b = x.shape[0]
    if flip:  # mirrored frames follow the plain ones; rows as in with_mirror
      span = frames.shape[0]
      frames = jnp.concatenate([frames, skeleton.flip_2d(frames, kps_left, kps_right)])
      kept = jnp.stack([kept, kept + span], axis=1).reshape(2 * b, kept_frames)
    tokens = frame_net(params, frames)                               # (S or 2S, D)
    return average(rest_net(params, with_mirror(x), jnp.take(tokens, kept, axis=0)), b)

  def gather_rows(data, idx, lo):
    """(N, J, 2) frames, (B, F) rows, first centre row lo -> forward_rows' arrays:
    the B + f - 1 frames from lo (N >= B + f - 1), the windows, their centre rows."""
    span = idx.shape[0] + kept_frames - 1
    kept = idx[:, first_kept:first_kept + kept_frames] - lo
    return (jax.lax.dynamic_slice_in_dim(data, lo, span),
            jnp.take(data, idx, axis=0, mode="clip"), kept)

  return forward, forward_rows, gather_rows


def shares_frames(model) -> bool:
  """Whether a window's time tokens are its centre frames' own (the pose model's spatial
  branch), so sliding windows can compute each frame's once (`Predictor.share_frames`)."""
  return hasattr(model, "frame_tokens") and int(model.kept_frames) > 1


class Predictor:
  """Runs a PoseFormerV2 (or a `trajectory.TrajectoryNet`) over whole 2D sequences.

  Args:
    model: a `poseformer_jax.model.PoseFormerV2` (its F and J fix the window).
    params: its parameters (the ``'params'`` collection).
    batch_size: windows per forward pass (a flipped copy doubles the rows the
      network sees). With a mesh it must be a multiple of the device count.
    flip: test-time flip augmentation.
    kps_left, kps_right: 2D keypoint indices swapped by the input flip.
    joints_left, joints_right: 3D joint indices swapped by the output flip.
    mesh: optional `jax.sharding.Mesh` with an axis named 'data'.
    root_joint: joint set to exactly 0 in the output (root-relative poses);
      None returns the network's output as is (the evaluation protocol
      compares that raw output with the root-zeroed target, as upstream).
    chunk_rows: network rows per call inside the jitted forward (see
      `chunked_apply`); None picks `default_chunk_rows()`, 0 disables. Only
      without a mesh (or with a one-device mesh).
    share_frames: for whole sequences, run the spatial branch once per frame
      rather than once per window and kept frame (same result up to float32
      summation order). Only without a mesh (or with a one-device mesh) and
      for f > 1 kept frames.
  """

  def __init__(self, model, params, *, batch_size: int = 1024, flip: bool = True,
               kps_left: Sequence[int], kps_right: Sequence[int],
               joints_left: Sequence[int], joints_right: Sequence[int],
               mesh: jax.sharding.Mesh | None = None, root_joint: int | None = 0,
               chunk_rows: int | None = None, share_frames: bool = True):
    if batch_size < 1:
      raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if chunk_rows is None:
      chunk_rows = default_chunk_rows()
    if chunk_rows < 0:
      raise ConfigError(f"chunk_rows must be >= 0, got {chunk_rows}")
    if mesh is not None and mesh.size > 1:
      chunk_rows, share_frames = 0, False
    self.kept_frames = int(model.kept_frames)
    self.share_frames = bool(share_frames) and shares_frames(model)
    # Batch shapes `predict_sequences` may pick: multiples of one chunk's windows
    # (or of the device count), so no chunk and no device gets padding rows.
    self._align = max(1, chunk_rows // (2 if flip else 1)) if chunk_rows else 1
    self.model = model
    self.batch_size = int(batch_size)
    self.flip = bool(flip)
    self.num_frames = int(model.num_frames)
    self.num_joints = int(model.num_joints)
    self.output_joints = int(model.output_joints)
    self.pad = (self.num_frames - 1) // 2
    self.root_joint = root_joint
    self.mesh = mesh
    kps_left, kps_right = tuple(map(int, kps_left)), tuple(map(int, kps_right))
    joints_left, joints_right = tuple(map(int, joints_left)), tuple(map(int, joints_right))
    # Validates the swaps once (raises on a bad left/right pairing).
    skeleton.flip_permutation(self.num_joints, kps_left, kps_right)
    skeleton.flip_permutation(self.output_joints, joints_left, joints_right)
    if root_joint is not None and not 0 <= root_joint < self.output_joints:
      raise ConfigError(f"root_joint {root_joint} out of range for {self.output_joints} joints")

    if mesh is None:
      self._replicated = self._batch_sharding = None
      self.params = jax.device_put(params)
    else:
      if "data" not in mesh.axis_names:
        raise ConfigError(f"the mesh needs an axis named 'data', has {mesh.axis_names}")
      devices = mesh.shape["data"]
      if self.batch_size % devices:
        raise ConfigError(f"batch_size {self.batch_size} is not a multiple of the "
                          f"{devices} devices of the mesh's 'data' axis")
      self._align = devices
      self._replicated = NamedSharding(mesh, PartitionSpec())
      self._batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
      self.params = jax.device_put(params, self._replicated)

    forward, forward_rows, gather_rows = network_functions(
        model, chunk_rows, self.flip, (kps_left, kps_right), (joints_left, joints_right),
        root_joint)

    def gather(data, idx):
      """(N, J, 2) frames, (B, F) row indices -> (B, F, J, 2) windows."""
      return jnp.take(data, idx, axis=0, mode="clip")  # indices are in range already

    # The pure function behind every prediction, (params, windows) -> poses; exported
    # as is by `poseformer_jax.export` (ONNX, StableHLO).
    self.forward_fn = forward
    options = cpu_tuning.compiler_options("forward")
    self._forward_rows = jax.jit(forward_rows, compiler_options=options)
    self._gather_rows = jax.jit(gather_rows)
    if mesh is None:
      self._forward = jax.jit(forward, compiler_options=options)
      self._gather = jax.jit(gather)
    else:
      self._forward = jax.jit(forward, in_shardings=(self._replicated, self._batch_sharding),
                              out_shardings=self._batch_sharding, compiler_options=options)
      self._gather = jax.jit(gather, in_shardings=(self._replicated, self._batch_sharding),
                             out_shardings=self._batch_sharding)

  @classmethod
  def from_info(cls, model, params, info, **kwargs) -> "Predictor":
    """A Predictor with the flip pairs of a dataset (`poseformer_jax.data.dataset.DatasetInfo`)."""
    kwargs.setdefault("root_joint", info.root_joint)
    return cls(model, params, kps_left=info.kps_left, kps_right=info.kps_right,
               joints_left=info.joints_left, joints_right=info.joints_right, **kwargs)

  def predict_sequence(self, keypoints_2d: np.ndarray, latency: int | None = None) -> np.ndarray:
    """3D pose of every frame of one sequence.

    Args:
      keypoints_2d: (T, J, 2) normalised screen coordinates, T >= 1.
      latency: frames after each frame its window sees, 0..pad (None: pad, centred):
        a live stream's poses (`poseformer_jax.data.windows.window_index`).
    Returns:
      (T, J, 3) float32, camera frame, metres, root-relative (root joint
      exactly 0 unless the Predictor was built with root_joint=None).
    """
    x = self._check(keypoints_2d)
    return self.predict_frames(x, np.arange(len(x)), latency)

  def predict_frames(self, keypoints_2d: np.ndarray, frames, latency=None) -> np.ndarray:
    """`predict_sequence`'s poses of the given `frames` ((K,) ints in [0, T)) only, as
    (K, J, 3), in passes of `batch_size` windows (one compiled shape for any K)."""
    x = self._check(keypoints_2d)
    frames = np.asarray(frames, np.int64).reshape(-1)
    if len(frames) == 0 or frames.min() < 0 or frames.max() >= len(x):
      raise DataError(f"frames must be 1 or more indices in [0, {len(x)}), got {frames}")
    idx = windows.window_index(np.zeros_like(frames), np.full_like(frames, len(x)), frames,
                               self.pad, latency)
    return self._run(x, ((i, idx[i:i + self.batch_size])
                         for i in range(0, len(idx), self.batch_size)), len(idx))

  def predict_sequences(self, sequences: Sequence[np.ndarray], *,
                        progress: Callable[[int], None] | None = None,
                        latency: int | None = None) -> list[np.ndarray]:
    """3D poses of every frame of several sequences, batched across sequences.

    Same result as `predict_sequence` on each, but batches run over sequence
    boundaries (windows never do), so only the very last batch is partial.

    Args:
      sequences: list of (T_i, J, 2) normalised screen coordinates.
      progress: optional callback, called with the number of frames done
        (in sequence order) after each batch completes.
      latency: as in `predict_sequence`.
    Returns:
      list of (T_i, J, 3) float32 arrays (see `predict_sequence`).
    """
    if latency is not None:
      windows.check_latency(latency, self.pad)
    if len(sequences) == 0:
      return []
    bank = windows.SequenceBank([self._check(s) for s in sequences])
    total = bank.num_samples
    ids = np.arange(total, dtype=np.int64)

    batch = self.batch_for(total)

    def batches() -> Iterator[tuple[int, np.ndarray]]:
      for first in range(0, total, batch):
        yield first, bank.index(ids[first:first + batch], self.pad, latency)

    out = self._run(bank.data, batches(), total, progress, batch)
    return np.split(out, np.cumsum(bank.lengths)[:-1])

  def batch_for(self, total: int) -> int:
    """Windows per pass for `total` windows: the batch that wastes the least.

    A fixed batch of 1024 computes 3072 windows for 2400 frames. This picks,
    among batches of at most `batch_size` and at least 1/8 of it that are
    multiples of one chunk's windows (or of the device count, so no chunk or
    device computes padding), the one minimising computed windows plus
    `PASS_COST_WINDOWS` per pass (2400 -> 4 passes of 640 windows); up to one
    such batch, `total` rounded up to 8 (few distinct shapes). Each distinct
    result compiles once.
    """
    unit = self._align
    smallest = max(unit, self.batch_size // 8)
    if total <= smallest:
      step = unit if self.mesh is not None else 8
      return min(self.batch_size, -(-total // step) * step)
    sizes = [b for b in range(self.batch_size, smallest - 1, -1) if b % unit == 0]
    return min(sizes or [self.batch_size],
               key=lambda b: -(-total // b) * (b + PASS_COST_WINDOWS))

  def predict_windows(self, windows_2d: np.ndarray) -> np.ndarray:
    """Centre-frame 3D poses of ready-made windows (online use: `poseformer_jax.stream`).

    Args:
      windows_2d: (B, F, J, 2) normalised screen coordinates, B >= 1; the
        same forward (flip averaging, root zeroed) as `predict_sequence`.
    Returns:
      (B, J, 3) float32.
    """
    x = np.asarray(windows_2d, np.float32)
    if x.ndim != 4 or x.shape[1:] != (self.num_frames, self.num_joints, 2) or len(x) < 1:
      raise DataError(f"expected windows of shape (B >= 1, {self.num_frames}, "
                      f"{self.num_joints}, 2), got {x.shape}")
    out = np.empty((len(x), self.output_joints, 3), np.float32)
    for first in range(0, len(x), self.batch_size):
      part = x[first:first + self.batch_size]
      n = len(part)
      if n < self.batch_size:  # one compiled shape: pad with copies of the last window
        part = np.concatenate([part, np.broadcast_to(part[-1:], (self.batch_size - n,)
                                                     + part.shape[1:])])
      y = self._forward(self.params, jax.device_put(part, self._batch_sharding))
      out[first:first + n] = np.asarray(y)[:n]
    return out

  # -- internals ---------------------------------------------------------------

  def _check(self, keypoints_2d) -> np.ndarray:
    x = np.asarray(keypoints_2d, np.float32)
    if x.ndim != 3 or x.shape[1:] != (self.num_joints, 2) or len(x) < 1:
      raise DataError(f"expected 2D keypoints of shape (T >= 1, {self.num_joints}, 2), "
                      f"got {x.shape}")
    return x

  def _run(self, data: np.ndarray, index_batches: Iterable[tuple[int, np.ndarray]],
           total: int, progress: Callable[[int], None] | None = None,
           batch: int | None = None) -> np.ndarray:
    """Forward passes over row-index batches (of `batch` windows, default
    `batch_size`) of `data`; returns (total, J, 3)."""
    batch = batch or self.batch_size
    out = np.empty((total, self.output_joints, 3), np.float32)
    short = batch + self.kept_frames - 1 - len(data)
    if self.share_frames and short > 0:  # forward_rows slices batch + f - 1 frames
      data = np.concatenate([data, np.zeros((short,) + data.shape[1:], data.dtype)])
    data_dev = jax.device_put(data, self._replicated)
    pending: collections.deque = collections.deque()

    def fetch_oldest():
      first, n, y = pending.popleft()
      out[first:first + n] = np.asarray(y)[:n]  # blocks until that batch is done
      if progress is not None:
        progress(first + n)

    for first, idx in index_batches:
      n = len(idx)
      if n < batch:  # pad with copies of the last window; dropped below
        idx = np.concatenate([idx, np.broadcast_to(idx[-1:], (batch - n, idx.shape[1]))])
      pending.append((first, n, self._forward_batch(data_dev, idx)))
      if len(pending) > MAX_IN_FLIGHT:
        fetch_oldest()
    while pending:
      fetch_oldest()
    return out

  def _forward_batch(self, data_dev: jax.Array, idx: np.ndarray) -> jax.Array:
    """Dispatches one batch: (B, F) rows of the device frames -> (B, J, 3), not awaited."""
    idx = idx.astype(np.int32, copy=False)
    if self.share_frames:
      first = model_lib.centre_start(self.num_frames, self.kept_frames)
      kept = idx[:, first:first + self.kept_frames]
      span = len(idx) + self.kept_frames - 1
      lo = min(int(kept.min()), data_dev.shape[0] - span)
      if lo >= 0 and int(kept.max()) - lo < span:  # consecutive windows, as sequences give
        return self._forward_rows(self.params, *self._gather_rows(data_dev, idx, np.int32(lo)))
    idx_dev = jax.device_put(idx, self._batch_sharding)
    return self._forward(self.params, self._gather(data_dev, idx_dev))
