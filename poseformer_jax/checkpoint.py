"""The project's one checkpoint format: every save and restore goes through this module.

Layout (``<step>`` is an integer training step; converted weights use step 0)::

    DIR/<step>/params/      model parameters (orbax StandardSave, float32)
    DIR/<step>/config/      the full ml-collections config as JSON (model block included)
    DIR/<step>/meta/        JSON: ``params_sha256`` (`params_digest`), plus the training
                            bookkeeping (step, epoch, RNG, pipeline position, best P1, ...)
    DIR/<step>/opt_state/   training only: the optimizer state

`save` is the one writer: parameters, config and the checksum bundle are
written there and nowhere else (`save_params` for converted weights,
`workdir.Checkpoints` for training). A training workdir holds two managers:
``checkpoints/`` (the latest K, for resuming) and ``best/`` (the best by
validation error). A pose checkpoint may hold a trajectory model's checkpoint
as ``trajectory/`` (`load_trajectory`). `load_checkpoint` accepts a manager directory, a training
workdir (prefers ``best/``), a single step directory or ``pretrained:NAME``.
Orbax writes each step to a temporary name and renames it when complete, so
a save interrupted half-way is never picked up as valid.

Arrays are saved as host numpy copies (written by process 0), so a checkpoint
carries no device topology: a run saved on 8 GPUs or 2 processes resumes or
evaluates on 1 CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from poseformer_jax import architectures
from poseformer_jax import cpu_tuning
from poseformer_jax import parallel
from poseformer_jax import pretrained
from poseformer_jax.errors import PoseFormerError

TRAIN_ITEMS = ("params", "opt_state", "config", "meta")
BEST_ITEMS = ("params", "config", "meta")
META_VERSION = 1
TRAJECTORY_DIR = "trajectory"  # a pose checkpoint's trajectory model (`load_trajectory`)


class CheckpointError(PoseFormerError, ValueError):
  """A checkpoint directory is missing, incomplete, unwritable or of the wrong architecture."""


class _ReadOnlyWarningFilter(logging.Filter):
  def filter(self, record):
    msg = record.getMessage()
    return not ("read_only=True" in msg or "directory is read only" in msg)


_READ_ONLY_FILTER = _ReadOnlyWarningFilter()
TRASH_DIR = "trash"


def empty_trash(directory: str | os.PathLike) -> None:
  """Removes steps that a manager on `directory` retired (see `open_manager`)."""
  shutil.rmtree(Path(directory) / TRASH_DIR, ignore_errors=True)


def open_manager(directory: str | os.PathLike, *, max_to_keep: int | None = None,
                 item_names=("params", "config"), read_only: bool = False,
                 best_metric: str | None = None) -> ocp.CheckpointManager:
  """An orbax CheckpointManager on `directory` with the project's item handlers.

  `best_metric` (e.g. 'val_p1'): keep the `max_to_keep` checkpoints with the lowest value.
  """
  handlers = {"params": ocp.StandardCheckpointHandler(),
              "config": ocp.JsonCheckpointHandler(),
              "opt_state": ocp.StandardCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  handlers = {k: v for k, v in handlers.items() if k in item_names}
  if read_only:
    # Orbax logs two warnings for every read-only manager; they are expected here.
    logging.getLogger("absl").addFilter(_READ_ONLY_FILTER)  # adding twice is a no-op
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      # Old steps are renamed (atomically) into TRASH_DIR and removed from there by
      # `empty_trash`, so a kill during clean-up never leaves a half-deleted step listed.
      todelete_subdir=None if read_only else TRASH_DIR,
      cleanup_tmp_directories=not read_only,
      create=not read_only,
      read_only=read_only,
      best_fn=(lambda m: m[best_metric]) if best_metric else None,
      best_mode="min",
      enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(
      Path(directory).absolute(), item_names=tuple(handlers), item_handlers=handlers,
      options=options)


def save(manager: ocp.CheckpointManager, step: int, params: Any,
         config: ml_collections.ConfigDict, *, meta: dict | None = None, opt_state: Any = None,
         metrics: dict | None = None) -> bool:
  """The one writer: params + config + meta (with ``params_sha256``) [+ opt_state] as `step`.

  Arrays are written as host numpy copies of (replicated) arrays; every process
  must call it (orbax coordinates the write). `metrics` goes to orbax's
  best-checkpoint bookkeeping (``best_metric``). Returns False, writing
  nothing, when `manager` already holds `step`.
  """
  step = int(step)
  if step in manager.all_steps():
    return False
  host_params = _host(params)
  meta = {**{k: _json_safe(v) for k, v in (meta or {}).items()},
          "params_sha256": params_digest(host_params)}
  items = {"params": ocp.args.StandardSave(host_params),
           "config": ocp.args.JsonSave(config.to_dict()),
           "meta": ocp.args.JsonSave(meta)}
  if opt_state is not None:
    items["opt_state"] = ocp.args.StandardSave(_host(opt_state))
  manager.save(step, metrics=metrics, args=ocp.args.Composite(**items))
  manager.wait_until_finished()
  if jax.process_index() == 0:
    empty_trash(manager.directory)
  return True


def save_params(directory: str | os.PathLike, params: Any,
                config: ml_collections.ConfigDict, step: int = 0) -> Path:
  """Writes `params` and `config` as step `step` of a new checkpoint directory (converted
  or published weights). Refuses to overwrite a directory that already holds steps."""
  directory = Path(directory).absolute()
  if directory.exists() and any(p.name.isdigit() for p in directory.iterdir()):
    raise CheckpointError(f"{directory}: already holds a checkpoint; choose a new --output")
  mngr = open_manager(directory, item_names=BEST_ITEMS)
  try:
    save(mngr, step, params, config)
  finally:
    mngr.close()
  return directory


def _host(tree: Any) -> Any:
  """Host numpy copies of replicated arrays: checkpoints carry no device topology, so a
  run saved on N devices / P processes restores on any other (process 0 writes them)."""
  return jax.tree.map(np.array, parallel.local_copy(tree))


def _json_safe(x):
  return None if isinstance(x, float) and not math.isfinite(x) else x


def _resolve(directory: Path) -> tuple[Path, int | None]:
  """Finds the manager directory and step (None = latest) that `directory` points at."""
  if not directory.is_dir():
    raise CheckpointError(f"{directory}: no such checkpoint directory")
  if (directory / "best").is_dir() and _steps(directory / "best"):
    return directory / "best", None
  if (directory / "checkpoints").is_dir() and _steps(directory / "checkpoints"):
    return directory / "checkpoints", None
  if _steps(directory):
    return directory, None
  if directory.name.isdigit() and (directory / "params").is_dir():
    return directory.parent, int(directory.name)
  raise CheckpointError(
      f"{directory}: holds no complete checkpoint (expected <step>/params and <step>/config; "
      "a save that was interrupted leaves none)")


def _steps(directory: Path) -> list[int]:
  return sorted(int(p.name) for p in directory.iterdir()
                if p.is_dir() and p.name.isdigit() and (p / "params").is_dir())


def resolve_path(directory: str | os.PathLike) -> Path:
  """A checkpoint directory, or the folder of a shipped ``pretrained:NAME`` model."""
  if pretrained.is_pretrained(directory):
    return pretrained.path(directory)
  return Path(directory).absolute()


def load_config(directory: str | os.PathLike, step: int | None = None
                ) -> tuple[ml_collections.ConfigDict, Path, int]:
  """Reads only the config of a checkpoint. Returns (config, manager_dir, step).

  `directory` may also be ``pretrained:NAME`` (a model shipped with the package).
  """
  root, found_step = _resolve(resolve_path(directory))
  step = step if step is not None else found_step
  if step is None:
    step = _steps(root)[-1]
  path = root / str(step) / "config"
  try:
    raw = json.loads((path / "metadata").read_text())  # orbax JsonSave's file name
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path}: unreadable config ({e})") from None
  if not isinstance(raw, dict) or "model" not in raw:
    raise CheckpointError(f"{path}: missing or invalid config (no 'model' block)")
  return ml_collections.ConfigDict(raw), root, step


def load_checkpoint(directory: str | os.PathLike, step: int | None = None):
  """Loads a checkpoint written by training or by `convert_torch_weights.py`.

  `directory`: a training workdir, a manager directory, a step directory, or
  ``pretrained:NAME`` for a model shipped with the package (`poseformer_jax.pretrained`).
  Returns ``(model, params, config)``: a `PoseFormerV2` built from the stored
  config, in the form programs on this backend run it (`cpu_tuning.tuned_model`:
  on a CPU its attention as broadcast products where that is faster; same
  parameters, same values), its parameters (host-local jax arrays, float32;
  weights stored in float16 are checked against their checksum, then widened)
  and the config. Use as ``poseformer_jax.jit_apply(model)({'params': params}, x)``
  (the fastest form) or ``model.apply({'params': params}, x)``, x (B, F, J, 2).
  Raises `CheckpointError` when the directory is incomplete or its
  parameters do not fit the stored architecture.
  """
  config, root, step = load_config(directory, step)
  model = architectures.from_config(config.model)
  expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), _dummy_input(config))["params"]
  mngr = open_manager(root, read_only=True)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore()))
  except Exception as e:  # orbax raises many types for damaged files
    raise CheckpointError(f"{root / str(step)}: cannot read parameters ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
  finally:
    mngr.close()
  params = restored["params"]
  check_params_match(params, expected, where=str(root / str(step)))
  digest = _stored_digest(root / str(step))
  if digest is not None and digest != params_digest(params):
    raise CheckpointError(f"{root / str(step)}: parameters are damaged (checksum mismatch)")
  params = jax.tree.map(lambda x: x.astype("float32") if x.dtype == "float16" else x, params)
  return cpu_tuning.tuned_model(model), params, config


def trajectory_path(directory: str | os.PathLike) -> Path | None:
  """The trajectory model's folder inside a pose checkpoint (``DIR/trajectory/``), or None.

  A pose checkpoint with a trajectory is a checkpoint directory (or ``pretrained:NAME``)
  holding a trajectory model's checkpoint directory as ``trajectory/``.
  """
  path = resolve_path(directory) / TRAJECTORY_DIR
  return path if path.is_dir() else None


def load_trajectory(directory: str | os.PathLike):
  """``(model, params, config)`` of the trajectory model in a pose checkpoint, or None.

  Raises `CheckpointError` when ``trajectory/`` holds something else than a trajectory model.
  """
  path = trajectory_path(directory)
  if path is None:
    return None
  model, params, config = load_checkpoint(path)
  if not architectures.is_trajectory(model):
    raise CheckpointError(f"{path}: holds a {architectures.kind_of(config.model)} model, "
                          "not a trajectory model")
  return model, params, config


def params_digest(params: Any) -> str:
  """SHA-256 over every parameter's path, dtype, shape and bytes (host copy).

  Stored in a checkpoint's ``meta`` item and checked by `load_checkpoint`, so
  a damaged file that still decodes is rejected instead of loading wrong weights.
  """
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    arr = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}".encode())
    h.update(arr.tobytes())
  return h.hexdigest()


def _stored_digest(step_dir: Path) -> str | None:
  try:
    return json.loads((step_dir / "meta" / "metadata").read_text()).get("params_sha256")
  except (OSError, ValueError, AttributeError):
    return None


def _dummy_input(config):
  return jnp.zeros((1, config.model.num_frames, config.model.num_joints, 2), jnp.float32)


def check_params_match(params: Any, expected: Any, where: str) -> None:
  """Raises CheckpointError listing missing, unexpected and mis-shaped parameters."""
  got = {jax.tree_util.keystr(k): v.shape
         for k, v in jax.tree_util.tree_leaves_with_path(params)}
  want = {jax.tree_util.keystr(k): v.shape
          for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want))
  shapes = sorted(f"{k}: {got[k]} != {want[k]}" for k in set(got) & set(want)
                  if tuple(got[k]) != tuple(want[k]))
  if missing or unexpected or shapes:
    parts = []
    if missing:
      parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if unexpected:
      parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    if shapes:
      parts.append(f"shape mismatch {shapes[:5]}{'...' if len(shapes) > 5 else ''}")
    raise CheckpointError(f"{where}: parameters do not fit the stored architecture: "
                          + "; ".join(parts))
