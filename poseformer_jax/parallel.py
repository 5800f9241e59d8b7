"""Data parallelism helpers: multi-process start-up, the device mesh, shardings.

One code path for 1 CPU, 8 GPUs or a multi-host slice: a 1-D `Mesh` over every
device with the axis name ``'data'``; batches are split along their first axis
over it (``P('data')``) and the training state is replicated (``P()``). Each
process feeds only its own rows of the global batch
(`make_array_from_process_local_data`); `jax.jit` inserts the cross-device
reductions, so a mean over the global batch is the same number on any number
of devices (up to float summation order).

The one device-mesh rule: `make_mesh` builds every mesh (training: every
device of every process); evaluation runs on `eval_mesh`, the same rule over
this process's devices (each process evaluates its own copy of the parameters).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from poseformer_jax.errors import ConfigError

DATA_AXIS = "data"

# Environment variables that mean "this process is one of several" and make
# `jax.distributed.initialize()` worth calling without explicit arguments.
_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS",)


def wants_distributed(train_cfg) -> bool:
  """Whether ``config.train`` (or the environment) asks for a multi-process run.

  Multi-process when ``train_cfg.distributed`` is true, when
  ``train_cfg.coordinator_address`` is set, when ``train_cfg.num_processes`` > 1,
  or when ``JAX_COORDINATOR_ADDRESS`` is in the environment.
  """
  num = train_cfg.get("num_processes", -1)
  return (bool(train_cfg.get("distributed", False))
          or bool(train_cfg.get("coordinator_address", ""))
          or (num is not None and num > 1) or any(os.environ.get(k) for k in _CLUSTER_ENV))


def maybe_initialize_distributed(train_cfg) -> bool:
  """Calls `jax.distributed.initialize` when the run is multi-process (`wants_distributed`).

  Process-wide set-up: ``train.py``'s main calls it before anything touches a
  device. ``coordinator_address``/``num_processes``/``process_id`` are passed
  when set (empty / -1 mean "let JAX detect it from the cluster environment":
  SLURM, Open MPI, Cloud TPU, ...). Returns True when it initialised (or already was).
  """
  if not wants_distributed(train_cfg):
    return False
  if jax.distributed.is_initialized():
    return True
  num = train_cfg.get("num_processes", -1)
  pid = train_cfg.get("process_id", -1)
  kwargs = dict(coordinator_address=train_cfg.get("coordinator_address", "") or None,
                num_processes=None if num is None or num < 0 else int(num),
                process_id=None if pid is None or pid < 0 else int(pid))
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(f"cannot start multi-process run ({kwargs}): "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  return True


def check_initialized(train_cfg) -> None:
  """Raises ConfigError when the config asks for a multi-process run that has not been
  initialised (`maybe_initialize_distributed`, which ``train.py``'s main calls)."""
  if wants_distributed(train_cfg) and not jax.distributed.is_initialized():
    raise ConfigError("this config asks for a multi-process run: call parallel."
                      "maybe_initialize_distributed(config.train) first (train.py does)")


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process), axis 'data'."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def eval_mesh(batch_size: int) -> Mesh | None:
  """Evaluation's mesh: this process's devices when there are several and they split
  `batch_size` evenly, else None (one device)."""
  devices = jax.local_devices()
  if len(devices) < 2 or batch_size % len(devices):
    return None
  return make_mesh(devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of the training state: a full copy on every device."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a batch: split along axis 0 over the 'data' axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated_scalar(value: int, mesh: Mesh) -> jax.Array:
  """An int32 scalar replicated over `mesh` (valid in multi-process runs)."""
  return jax.jit(lambda: jnp.asarray(value, jnp.int32), out_shardings=replicated(mesh))()


def check_batch_size(global_batch: int, mesh: Mesh, accum_steps: int = 1) -> None:
  """The global batch must split evenly over processes, devices and microbatches."""
  n = mesh.devices.size
  if global_batch % jax.process_count():
    raise ConfigError(f"train.batch_size={global_batch} is not divisible by the number of "
                      f"processes ({jax.process_count()})")
  if global_batch % (n * accum_steps):
    what = f"{n} devices" + (f" x {accum_steps} microbatches" if accum_steps > 1 else "")
    raise ConfigError(f"train.batch_size={global_batch} is not divisible by {what}; "
                      f"choose a multiple of {n * accum_steps}")


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's rows into global arrays sharded over 'data'.

  `local[k]` has shape (global_batch / process_count, ...): this process's
  contiguous slice of the global batch (process p holds rows p*L .. p*L+L-1).
  """
  sharding = batch_sharding(mesh)
  pc = jax.process_count()
  out = {}
  for k, v in local.items():
    v = np.asarray(v)
    out[k] = jax.make_array_from_process_local_data(
        sharding, v, (v.shape[0] * pc,) + v.shape[1:])
  return out


def local_copy(tree: Any) -> Any:
  """Host-local copies of replicated global arrays (each process reads its own replica).

  Works in multi-process runs, where a replicated array is not fully addressable
  and cannot be converted with `np.asarray` directly.
  """
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))
                      if isinstance(x, jax.Array) else x, tree)


def to_float(x: jax.Array) -> float:
  """A replicated scalar as a Python float (blocks until it is computed)."""
  return float(np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x)


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is true on any (a no-op on one process)."""
  if jax.process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.asarray([int(bool(flag))], np.int32))
  return bool(np.asarray(flags).any())


def broadcast_from_first(value: float | None) -> float | None:
  """Process 0's float (None allowed) on every process."""
  if jax.process_count() == 1:
    return value
  arr = np.asarray([np.nan if value is None else value], np.float32)
  out = float(np.asarray(multihost_utils.broadcast_one_to_all(arr))[0])
  return None if np.isnan(out) else out


def barrier(name: str) -> None:
  """Waits until every process gets here (a no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


class StopFlag:
  """Pre-emption: SIGTERM (or a first SIGINT) sets `reason`; the run stops after its current
  step (`any_process` tells every process). A second SIGINT raises KeyboardInterrupt.
  Signal handlers can only be installed from the main thread; elsewhere nothing is."""

  def __init__(self):
    self.reason: str | None = None
    self._old = {}

  def install(self) -> "StopFlag":
    if threading.current_thread() is not threading.main_thread():
      return self
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._old[sig] = signal.getsignal(sig)
      signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if signum == signal.SIGINT and self.reason is not None:
      raise KeyboardInterrupt  # second Ctrl-C: stop now
    self.reason = signal.Signals(signum).name

  def restore(self) -> None:
    for sig, old in self._old.items():
      signal.signal(sig, old)
    self._old = {}
