"""Data parallelism helpers: multi-process start-up, the device mesh, shardings.

One code path for 1 CPU, 8 GPUs or a multi-host slice: a 1-D `Mesh` over every
device with the axis name ``'data'``; batches are split along their first axis
over it (``P('data')``) and the training state is replicated (``P()``). Each
process feeds only its own rows of the global batch
(`make_array_from_process_local_data`); `jax.jit` inserts the cross-device
reductions, so a mean over the global batch is the same number on any number
of devices (up to float summation order).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from poseformer_jax.errors import ConfigError

DATA_AXIS = "data"

# Environment variables that mean "this process is one of several" and make
# `jax.distributed.initialize()` worth calling without explicit arguments.
_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS",)


def maybe_initialize_distributed(train_cfg) -> bool:
  """Calls `jax.distributed.initialize` when the run is multi-process.

  Multi-process when ``train_cfg.distributed`` is true, when
  ``train_cfg.coordinator_address`` is set, when ``train_cfg.num_processes`` > 1,
  or when ``JAX_COORDINATOR_ADDRESS`` is in the environment.
  ``coordinator_address``/``num_processes``/``process_id`` are passed when set
  (empty / -1 mean "let JAX detect it from the cluster environment": SLURM,
  Open MPI, Cloud TPU, ...). Must run before any other JAX computation.
  Returns True when it initialised (or already was).
  """
  address = train_cfg.get("coordinator_address", "") or None
  num = train_cfg.get("num_processes", -1)
  pid = train_cfg.get("process_id", -1)
  wanted = (bool(train_cfg.get("distributed", False)) or address is not None
            or (num is not None and num > 1) or any(os.environ.get(k) for k in _CLUSTER_ENV))
  if not wanted:
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = dict(coordinator_address=address,
                num_processes=None if num is None or num < 0 else int(num),
                process_id=None if pid is None or pid < 0 else int(pid))
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    raise ConfigError(f"cannot start multi-process run ({kwargs}): "
                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  return True


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process), axis 'data'."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of the training state: a full copy on every device."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a batch: split along axis 0 over the 'data' axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


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
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.asarray([int(bool(flag))], np.int32))
  return bool(np.asarray(flags).any())


def broadcast_from_first(value: float | None) -> float | None:
  """Process 0's float (None allowed) on every process."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils
  arr = np.asarray([np.nan if value is None else value], np.float32)
  out = float(np.asarray(multihost_utils.broadcast_one_to_all(arr))[0])
  return None if np.isnan(out) else out
