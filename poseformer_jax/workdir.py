"""A training workdir's checkpoints: ``WORKDIR/checkpoints/`` (the latest K) and ``best/``.

Every write goes through `checkpoint.save` (the one format); this module adds
what only training needs: the workdir check, the two managers, resuming
(`Checkpoints.restore_latest`, refusing a checkpoint that cannot continue as
the run) and the clean-up of step folders half-deleted by an earlier kill.
``best/`` keeps the lowest validation error (``val_p1``: P1 for a pose model,
MRPE for a trajectory model).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from poseformer_jax import parallel
from poseformer_jax.checkpoint import (BEST_ITEMS, TRAIN_ITEMS, CheckpointError, load_config,
                                       open_manager, save)
from poseformer_jax.errors import ConfigError


def prepare_workdir(workdir: str | os.PathLike) -> Path:
  """Creates a training workdir and checks that it is writable (CheckpointError otherwise)."""
  workdir = Path(workdir).absolute()
  if workdir.exists() and not workdir.is_dir():
    raise CheckpointError(f"{workdir}: workdir exists and is not a directory")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write_test.{os.getpid()}"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise CheckpointError(f"{workdir}: workdir is not writable ({e.strerror or e})") from None
  return workdir


class Checkpoints:
  """The two managers of a training workdir: ``checkpoints/`` (latest K) and ``best/``.

  Opening them removes step folders half-deleted by an earlier kill
  (`prune_partial_steps`, process 0, then a barrier).
  """

  def __init__(self, workdir: Path, keep: int):
    self.train_dir = Path(workdir) / "checkpoints"
    self.best_dir = Path(workdir) / "best"
    if jax.process_index() == 0:
      for d in (self.train_dir, self.best_dir):
        prune_partial_steps(d)
    parallel.barrier("poseformer_jax.checkpoint.prune_partial_steps")
    self.train = open_manager(self.train_dir, max_to_keep=max(int(keep), 1),
                              item_names=TRAIN_ITEMS)
    self.best = open_manager(self.best_dir, max_to_keep=1, item_names=BEST_ITEMS,
                             best_metric="val_p1")

  def latest_step(self) -> int | None:
    return self.train.latest_step()

  def last_good(self) -> str:
    """The newest complete step folder of ``checkpoints/`` (for messages)."""
    step = self.latest_step()
    return f"{self.train_dir / str(step)}" if step is not None else "(none yet)"

  def save(self, step: int, params, opt_state, config, meta: dict) -> bool:
    return save(self.train, step, params, config, meta=meta, opt_state=opt_state)

  def save_best(self, step: int, params, config, meta: dict, val_p1: float) -> bool:
    return save(self.best, step, params, config, meta={**meta, "val_p1": val_p1},
                metrics={"val_p1": float(val_p1)})

  def best_p1(self) -> float | None:
    """val_p1 of the checkpoint in ``best/`` (None when empty or unreadable)."""
    step = self.best.latest_step()
    if step is None:
      return None
    try:
      meta = self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      return meta.get("val_p1")
    except Exception:  # noqa: BLE001 - a damaged best/ must not block resuming
      return None

  def restore_latest(self, config, steps_per_epoch: int, abstract_params, abstract_opt_state
                     ) -> tuple[Path, Any, Any, dict] | None:
    """The latest training state: (step dir, params, opt_state, meta), or None when empty.

    Refuses (`check_resumable`) a checkpoint that cannot continue as this run;
    ``meta['best_p1']`` is the better of the stored one and ``best/``'s.
    """
    step = self.latest_step()
    if step is None:
      return None
    where = self.train_dir / str(step)
    stored, _, _ = load_config(self.train_dir, step)
    meta = self.train.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    check_resumable(stored, config, meta, steps_per_epoch, where)
    try:
      out = self.train.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract_params),
          opt_state=ocp.args.StandardRestore(abstract_opt_state)))
    except Exception as e:  # orbax raises many types for damaged files
      msg = str(e).splitlines()[0] if str(e) else ""
      raise CheckpointError(
          f"{where}: cannot restore the training state ({type(e).__name__}: {msg})") from None
    meta = dict(meta, grad_accum_steps=stored_microbatches(stored, meta))
    best = self.best_p1()
    if best is not None and (meta.get("best_p1") is None or best < meta["best_p1"]):
      meta["best_p1"] = best
    return where, out["params"], out["opt_state"], meta

  def close(self):
    self.train.close()
    self.best.close()


def _complete(step_dir: Path) -> bool:
  return (step_dir / "_CHECKPOINT_METADATA").is_file() and (step_dir / "params").is_dir()


def prune_partial_steps(directory: Path) -> list[str]:
  """Removes step folders left half-deleted by a kill during orbax's clean-up of old steps.

  Orbax writes a step under a temporary name and renames it when complete
  (never listed while partial), but deletes old steps with a plain recursive
  delete: a SIGKILL in the middle leaves an *old* step folder without its
  ``_CHECKPOINT_METADATA`` or ``params`` that orbax would still list. Only
  such folders older than the newest complete step are removed; the newest
  complete step, the one a resume reads, is never touched. Returns the names removed.
  """
  directory = Path(directory)
  if not directory.is_dir():
    return []
  steps = {int(p.name): p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()}
  complete = [s for s, p in steps.items() if _complete(p)]
  if not complete:
    return []
  removed = []
  for s, p in sorted(steps.items()):
    if s < max(complete) and not _complete(p):
      shutil.rmtree(p, ignore_errors=True)
      removed.append(p.name)
  return removed


def stored_microbatches(stored: ml_collections.ConfigDict, meta: dict) -> int:
  """Microbatches per step of a stored run: the count it ran with (``meta``; checkpoints
  before automatic microbatches: their config's setting, 1 by default)."""
  return int(meta.get("grad_accum_steps") or stored.train.get("grad_accum_steps", 1) or 1)


def check_resumable(stored: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                    meta: dict, steps_per_epoch: int, where: Path) -> None:
  """Raises ConfigError when the checkpoint cannot continue as this run."""
  want, have = config.model.to_dict(), stored.model.to_dict()
  for block in (want, have):  # configs written before `model.kind` existed are pose models
    block.setdefault("kind", "pose")
  diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
  if diff:
    detail = ", ".join(f"{k}: checkpoint {have.get(k)!r} vs config {want.get(k)!r}" for k in diff)
    raise ConfigError(f"{where}: cannot resume: the checkpoint's model differs from the config "
                      f"({detail}); use a new --workdir or the checkpoint's settings")
  checks = [("train.batch_size", stored.train.batch_size, config.train.batch_size),
            ("train.seed", stored.train.seed, config.train.seed),
            ("data.shuffle_seed", stored.data.shuffle_seed, config.data.shuffle_seed),
            ("steps per epoch", meta.get("steps_per_epoch"), steps_per_epoch)]
  if int(config.train.get("grad_accum_steps", 1)) >= 1:  # 0 (automatic) takes the stored count
    checks.append(("train.grad_accum_steps", stored_microbatches(stored, meta),
                   config.train.grad_accum_steps))
  bad = [f"{name}: checkpoint {a!r} vs now {b!r}" for name, a, b in checks if a != b]
  if bad:
    raise ConfigError(f"{where}: cannot resume exactly ({'; '.join(bad)}); "
                      "use a new --workdir or the checkpoint's settings")
