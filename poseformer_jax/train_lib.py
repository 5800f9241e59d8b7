"""Data-parallel training (pose or trajectory models) with exact resume: set-up and the loop.
`train(config, workdir)`; ``train.py`` is a thin command line over it that does the
process-wide set-up first (`jax.distributed`). Three parts, as in flax's examples:
`train_step` (state, optimizer, loss, the step), `workdir` (``WORKDIR/checkpoints/``
latest K, ``WORKDIR/best/``, through `checkpoint`'s one format) and here the set-up
(data, pipeline, state, the jitted step with its shardings, the `evaluation.Evaluator`)
and one flat loop over global steps (epoch = ``step // steps_per_epoch``). One rule
(`itstime`) says when to log, checkpoint and validate; the loop has one exit for stops
and pre-emption. Logs: ``WORKDIR/log.jsonl``, ``WORKDIR/tensorboard/`` (`logging_lib`).

Resume: a run in ``checkpoints/`` continues exactly where it stopped (params,
optimizer state, step, RNG, best P1, running epoch loss; the pipeline restarts
at ``epoch(epoch, start_step=k)``): bitwise the uninterrupted run on CPU with
the same devices and thread count. Another architecture, batch size, seed,
epoch length or accumulation is refused with a `ConfigError`. SIGTERM (and a
first Ctrl-C) finish the current step, save and return ``'preempted'``; a
non-finite loss raises `TrainingError` before any later checkpoint is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np

from poseformer_jax import architectures
from poseformer_jax import checkpoint
from poseformer_jax import evaluation
from poseformer_jax import logging_lib
from poseformer_jax import model as model_lib
from poseformer_jax import parallel
from poseformer_jax import train_step as step_lib
from poseformer_jax import workdir as workdir_lib
from poseformer_jax.data import dataset
from poseformer_jax.data import pipeline as pipeline_lib
from poseformer_jax.errors import PoseFormerError
from poseformer_jax.train_step import TrainState


class TrainingError(PoseFormerError, RuntimeError):
  """Training cannot go on: non-finite loss, no full batch, inconsistent pipeline."""


# ----------------------------------------------------------------------------
# Data: the loaders and the pipeline, behind two small seams (tests swap them).


@dataclasses.dataclass
class TrainData:
  """Loaded sequences: `train`/`test` lists of `dataset.Sequence`, and the DatasetInfo."""

  train: list
  test: list
  info: Any


def load_data(config: ml_collections.ConfigDict) -> TrainData:
  """Training and test sequences of ``config.data`` (synthetic data generated if configured)."""
  dataset.ensure_synthetic(config.data)
  train_seqs, info = dataset.load_sequences(config.data, "train")
  test_seqs, _ = dataset.load_sequences(config.data, "test")
  return TrainData(train=train_seqs, test=test_seqs, info=info)


def build_pipeline(config: ml_collections.ConfigDict, data: TrainData):
  """The training input pipeline: this process's slice of every global batch (for a
  trajectory model: rays in, roots out, `dataset.trajectory_view`)."""
  trajectory = architectures.kind_of(config.model) == "trajectory"
  sequences, info = (dataset.trajectory_view(data.train, data.info,
                                             float(config.data.get("reference_bones", 0.0)))
                     if trajectory else (data.train, data.info))
  return pipeline_lib.TrainPipeline(
      sequences, info, num_frames=config.model.num_frames,
      global_batch=config.train.batch_size, seed=config.data.shuffle_seed,
      flip=config.data.flip_augment, process_index=jax.process_index(),
      process_count=jax.process_count(),
      backend=pipeline_lib.available_backend(config.data.backend),
      prefetch=config.data.prefetch)


def itstime(step: int, every: int, total: int | None = None) -> bool:
  """Whether periodic work is due after `step` completed units (steps or epochs): `step` is
  a positive multiple of `every`, or the last unit (`total`). `every` <= 0: never."""
  if every <= 0 or step <= 0:
    return False
  return step % every == 0 or step == total


@dataclasses.dataclass
class LoopState:
  """What the loop keeps between steps; a checkpoint's ``meta`` item (with the run's
  constants, and ``epoch``/``step_in_epoch`` derived from `step`)."""

  step: int = 0
  best_p1: float | None = None
  best_step: int | None = None
  epoch_loss_sum: float = 0.0
  epoch_loss_steps: int = 0
  epoch_samples: int = 0

  @classmethod
  def from_meta(cls, meta: dict) -> "LoopState":
    return cls(**{f.name: meta[f.name] for f in dataclasses.fields(cls) if f.name in meta})
  def to_meta(self, run: "_Run") -> dict:
    epoch, step_in_epoch = divmod(self.step, run.steps_per_epoch)
    return {**run.constants, "step": self.step, "epoch": epoch, "step_in_epoch": step_in_epoch,
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "step"}}


@dataclasses.dataclass
class TrainResult:
  """What `train` returns. status: 'completed' | 'preempted' (SIGTERM/Ctrl-C) | 'stopped'
  (train.stop_after_steps); history: this call's epoch records (log.jsonl); final: the
  final evaluation's results, when it ran."""

  status: str
  step: int
  epoch: int
  best_p1: float | None
  history: list
  final: dict | None
  workdir: str
  losses: list = dataclasses.field(default_factory=list)  # per-step train loss (m), this call
  state: TrainState | None = None


@dataclasses.dataclass
class _Run:
  """Everything the loop needs, fixed by the set-up (`_setup`, then `_start`)."""

  config: ml_collections.ConfigDict
  workdir: Path
  say: Callable[[str], None]
  mesh: Any
  model: model_lib.PoseFormerV2
  data: TrainData | None
  pipeline: Any
  validate: Callable[[Any], dict] | None
  evaluator: evaluation.Evaluator | None
  steps_per_epoch: int
  epochs: int
  total_steps: int
  ckpts: workdir_lib.Checkpoints
  schedule: Callable[[int], Any]
  logger: logging_lib.MetricLogger | None = None
  progress: logging_lib.TrainProgress | None = None
  step_fn: Callable[[TrainState, dict], tuple[TrainState, dict]] | None = None
  constants: dict = dataclasses.field(default_factory=dict)  # meta fields fixed for the run
  history: list = dataclasses.field(default_factory=list)
  losses: list = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------
# Entry point and set-up.


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
          data: TrainData | None = None, pipeline: Any = None,
          validate: Callable[[Any], dict] | None = None,
          print_fn: Callable[[str], None] | None = None) -> TrainResult:
  """Trains (or resumes) in `workdir`. See the module docstring.

  Multi-process runs call `parallel.maybe_initialize_distributed(config.train)` first.

  Args:
    config: the full config (``base_config()`` schema).
    workdir: output folder (created); an existing run in it is resumed.
    data: preloaded sequences (default: `load_data(config)`).
    pipeline: a training pipeline object with the `TrainPipeline` interface
      (default: `build_pipeline(config, data)`).
    validate: params -> {'p1': mm, 'p2': mm, ...} (default: the run's `Evaluator`).
    print_fn: where status lines go (default: print on process 0).
  Returns a `TrainResult`; raises `PoseFormerError` subclasses for user-facing failures.
  """
  parallel.check_initialized(config.train)
  step_lib.validate_config(config)
  # From here on SIGTERM / Ctrl-C only set a flag: the run stops after its next step.
  stop = parallel.StopFlag().install()
  try:
    run = _setup(config, workdir, data, pipeline, validate, print_fn)
    try:
      state, loop = _start(run)
      state, status = _loop(run, state, loop, stop)
    finally:
      if run.logger is not None:
        run.logger.close()
      run.ckpts.close()
    final = _finish(run, loop, status)
  finally:
    stop.restore()
  return TrainResult(status=status, step=loop.step, epoch=loop.step // run.steps_per_epoch,
                     best_p1=loop.best_p1, history=run.history, final=final,
                     workdir=str(run.workdir), losses=run.losses, state=state)


def _setup(config, workdir, data, pipeline, validate, print_fn) -> _Run:
  """Data, pipeline, evaluator and checkpoints of the run (no state yet)."""
  is_main = jax.process_index() == 0
  say = print_fn or ((lambda s: print(s, flush=True)) if is_main else (lambda s: None))
  workdir = workdir_lib.prepare_workdir(workdir)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh,
                            max(int(config.train.grad_accum_steps), 1))
  model = architectures.from_config(config.model)
  validating = int(config.train.eval_every_epochs) > 0
  if data is None and (pipeline is None or (validate is None and validating)):
    data = load_data(config)
  pipeline = pipeline if pipeline is not None else build_pipeline(config, data)
  steps_per_epoch = int(pipeline.steps_per_epoch)
  if config.train.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, int(config.train.max_steps_per_epoch))
  if steps_per_epoch < 1:
    raise TrainingError(f"the training set gives no full batch of {config.train.batch_size}; "
                        "lower train.batch_size or add data")
  evaluator = None
  if validate is None and validating:
    evaluator = evaluation.Evaluator(config, model, data.test, data.info)
    validate = evaluator.validate
  ckpts = workdir_lib.Checkpoints(workdir, config.train.keep_checkpoints)
  return _Run(config=config, workdir=workdir, say=say, mesh=mesh, model=model, data=data,
              pipeline=pipeline, validate=validate, evaluator=evaluator,
              steps_per_epoch=steps_per_epoch, epochs=int(config.train.epochs),
              total_steps=int(config.train.epochs) * steps_per_epoch, ckpts=ckpts,
              schedule=step_lib.learning_rate_schedule(config.train, steps_per_epoch))


def _start(run: _Run) -> tuple[TrainState, LoopState]:
  """The jitted step, the state (restored from ``checkpoints/`` or fresh) and the logs."""
  config, mesh = run.config, run.mesh
  optimizer = step_lib.make_optimizer(config.train, run.steps_per_epoch)
  init_key, dropout_key = step_lib.rng_keys(config.train.seed)
  abstract = step_lib.init_state(run.model, optimizer, init_key, mesh, abstract=True)
  restored = run.ckpts.restore_latest(config, run.steps_per_epoch, abstract.params,
                                      abstract.opt_state)
  # The microbatch count changes the drop-path draws, so a resumed run keeps its own.
  accum = (restored[3]["grad_accum_steps"] if restored is not None else step_lib.microbatches(
      config.train.grad_accum_steps, config.model, config.train.batch_size, mesh))
  run.constants = {
      "version": checkpoint.META_VERSION, "steps_per_epoch": run.steps_per_epoch,
      "global_batch": int(config.train.batch_size), "seed": int(config.train.seed),
      "shuffle_seed": int(config.data.shuffle_seed),
      "dropout_key": list(step_lib.key_tuple(dropout_key)), "grad_accum_steps": accum}
  spec = step_lib.spec_from_config(config, run.model, optimizer, mesh, dropout_key, accum)
  jitted = jax.jit(step_lib.train_step, **step_lib.jit_kwargs(mesh))
  run.step_fn = lambda state, batch: jitted(state, batch, spec)
  main = jax.process_index() == 0
  run.logger = logging_lib.MetricLogger(run.workdir, enabled=main,
                                        tensorboard=config.train.tensorboard)
  run.progress = logging_lib.TrainProgress(
      run.logger, steps_per_epoch=run.steps_per_epoch, epochs=run.epochs,
      global_batch=int(config.train.batch_size), enabled=main and config.train.progress_bar)
  if restored is None:
    state = step_lib.init_state(run.model, optimizer, init_key, mesh)
    if config.train.get("init_from"):  # fine-tuning / going on from shipped weights
      _, params, _ = checkpoint.load_checkpoint(config.train.init_from)
      checkpoint.check_params_match(params, state.params, where=str(config.train.init_from))
      state = step_lib.with_params(state, params, optimizer, mesh)
      run.say(f"Starting from the parameters of {config.train.init_from}, fresh optimizer")
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    run.say(f"Training {config.get('variant', '')} ({n_params:,} parameters) on "
            f"{mesh.devices.size} device(s) / {jax.process_count()} process(es); global batch "
            f"{config.train.batch_size}, {run.steps_per_epoch} steps per epoch, "
            f"{config.train.epochs} epochs"
            + (f", each step in {accum} microbatches" if accum > 1 else "")
            + f"; workdir {run.workdir}")
    return state, LoopState()
  where, params, opt_state, meta = restored
  loop = LoopState.from_meta(meta)
  state = TrainState(step=parallel.replicated_scalar(loop.step, mesh), params=params,
                     opt_state=opt_state)
  epoch, k = divmod(loop.step, run.steps_per_epoch)
  run.say(f"Resuming from {where}: step {loop.step}, epoch {epoch + 1}, step {k} of "
          f"{run.steps_per_epoch} in the epoch")
  return state, loop


# ----------------------------------------------------------------------------
# The loop.


def _batches(pipeline, first_step: int, steps_per_epoch: int, total_steps: int
             ) -> Iterator[dict]:
  """This process's batches from global step `first_step` on, epoch after epoch."""
  step = first_step
  while step < total_steps:
    epoch, start = divmod(step, steps_per_epoch)
    for batch in itertools.islice(pipeline.epoch(epoch, start_step=start),
                                  steps_per_epoch - start):
      yield batch
      step += 1
    if step % steps_per_epoch:
      raise TrainingError(f"the input pipeline ended after {step - epoch * steps_per_epoch} "
                          f"of {steps_per_epoch} steps of epoch {epoch + 1}")


class _Metrics:
  """Each step's metrics, fetched one step late (so the host never waits on the device):
  checked for NaN/inf, summed into the epoch's loss, passed on to the progress."""

  def __init__(self, run: _Run, loop: LoopState):
    self.run, self.loop = run, loop
    self.pending: tuple[int, dict] | None = None

  def push(self, step: int, metrics: dict) -> None:
    """Keeps step `step`'s metrics and settles the previous step's."""
    self.settle()
    self.pending = (step, metrics)

  def settle(self) -> None:
    """Fetches the pending metrics; raises TrainingError if they are not finite."""
    if self.pending is None:
      return
    (step, metrics), self.pending = self.pending, None
    run, loop = self.run, self.loop
    loss = parallel.to_float(metrics["loss"])
    grad_norm = parallel.to_float(metrics["grad_norm"])
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
      what = f"loss ({loss})" if not math.isfinite(loss) else f"gradient norm ({grad_norm})"
      epoch, k = divmod(step - 1, run.steps_per_epoch)
      raise TrainingError(
          f"non-finite {what} at step {step} (epoch {epoch + 1}, step {k + 1} of "
          f"{run.steps_per_epoch}); stopped without saving this state; the last good "
          f"checkpoint is {run.ckpts.last_good()}")
    run.losses.append(loss)
    loop.epoch_loss_sum += loss
    loop.epoch_loss_steps += 1
    loop.epoch_samples += int(run.config.train.batch_size)
    run.progress.step(step, loss, grad_norm,
                      log=itstime(step, max(int(run.config.train.log_every_steps), 1)))


def _begin_epoch(run: _Run, loop: LoopState) -> None:  # the epoch's sums, clock and bar
  if loop.step % run.steps_per_epoch == 0:
    loop.epoch_loss_sum, loop.epoch_loss_steps, loop.epoch_samples = 0.0, 0, 0
  run.progress.begin_epoch(loop.step)


def _loop(run: _Run, state: TrainState, loop: LoopState, stop: parallel.StopFlag
          ) -> tuple[TrainState, str]:
  """Global steps from `loop.step` to the end of ``train.epochs``, or to a stop."""
  t = run.config.train
  spe = run.steps_per_epoch
  metrics_log = _Metrics(run, loop)
  reason = None
  if loop.step < run.total_steps:
    _begin_epoch(run, loop)
  for batch in _batches(run.pipeline, loop.step, spe, run.total_steps):
    state, metrics = run.step_fn(state, parallel.global_batch(batch, run.mesh))
    loop.step += 1
    metrics_log.push(loop.step, metrics)
    if parallel.any_process(stop.reason is not None):
      reason = "preempted"
    elif 0 < int(t.stop_after_steps) <= loop.step:
      reason = "stopped"
    epoch_end = loop.step % spe == 0
    save = itstime(loop.step, int(t.checkpoint_every_steps)) or (
        epoch_end and itstime(loop.step // spe, int(t.checkpoint_every_epochs), run.epochs))
    if save or epoch_end or reason:
      metrics_log.settle()  # the metrics are checked before anything is saved
    if epoch_end:
      _end_epoch(run, state, loop, *run.progress.end_epoch())
    if save:
      run.ckpts.save(loop.step, state.params, state.opt_state, run.config, loop.to_meta(run))
    if reason:
      break
    if epoch_end and loop.step < run.total_steps:
      _begin_epoch(run, loop)
  if reason is None:
    return state, "completed"
  # The one exit for stops: a checkpoint of this step (unless just written), then a message.
  run.progress.close()
  run.ckpts.save(loop.step, state.params, state.opt_state, run.config, loop.to_meta(run))
  epoch, k = divmod(loop.step, spe)
  where = f"end of epoch {epoch}" if k == 0 else f"epoch {epoch + 1}, step {k}/{spe}"
  run.say(f"{'Pre-empted' if reason == 'preempted' else 'Stopped'} at step {loop.step} "
          f"({where}); checkpoint saved in {run.ckpts.train_dir}; run the same command again "
          "to resume")
  return state, reason


def _end_epoch(run: _Run, state: TrainState, loop: LoopState, elapsed: float,
               steps_timed: int) -> None:
  """The epoch record: train loss, lr, throughput, validation (and the best checkpoint)."""
  epoch = loop.step // run.steps_per_epoch
  global_batch = int(run.config.train.batch_size)
  train_loss = loop.epoch_loss_sum / max(loop.epoch_loss_steps, 1)
  record = {"kind": "epoch", "epoch": epoch, "step": loop.step,
            "train_loss_mm": train_loss * 1000.0,
            "lr": float(run.schedule(loop.step - 1)),  # the epoch's last step
            "samples_per_s": steps_timed * global_batch / max(elapsed, 1e-9),
            "epoch_time_s": elapsed}
  if run.validate and itstime(epoch, int(run.config.train.eval_every_epochs), run.epochs):
    t_val = time.perf_counter()
    val = run.validate(state.params)
    record["val_time_s"] = time.perf_counter() - t_val
    # The error the run selects its best checkpoint by: P1, or MRPE for a trajectory model.
    p1 = parallel.broadcast_from_first(val.get("p1", val.get("mrpe")))
    record.update({f"val_{k}": val[k] for k in ("p1", "p2", "mrpe") if val.get(k) is not None})
    if p1 is not None and math.isfinite(p1) and (loop.best_p1 is None or p1 < loop.best_p1):
      loop.best_p1, loop.best_step = p1, loop.step
      run.ckpts.save_best(loop.step, state.params, run.config, loop.to_meta(run), p1)
      record["best"] = True
  run.history.append(record)
  run.logger.write(record, step=loop.step, tb_scalars={
      "train/loss_mm": record["train_loss_mm"], "train/lr": record["lr"],
      "train/samples_per_s": record["samples_per_s"],
      **{f"val/{k}_mm": record.get(f"val_{k}") for k in ("p1", "p2", "mrpe")}})
  run.logger.flush()
  run.say(logging_lib.epoch_line(record, run.epochs))


def _finish(run: _Run, loop: LoopState, status: str) -> dict | None:
  """The closing lines and, after a completed run, the final evaluation of the best
  checkpoint through the same Evaluator (on the test data already loaded)."""
  if status != "completed":
    return None
  config, say = run.config, run.say
  epochs = loop.step // run.steps_per_epoch
  if not run.history:
    say(f"{run.workdir} already holds a completed run ({epochs} epochs); raise train.epochs "
        "to continue it")
  say(f"Training complete: {loop.step} steps, {epochs} epochs"
      + (f", best validation {'MRPE' if architectures.is_trajectory(run.model) else 'P1'}"
         f" {loop.best_p1:.2f} mm (step {loop.best_step})"
         if loop.best_p1 is not None else ""))
  if not config.train.final_eval:
    return None
  if jax.process_count() > 1:
    say(f"Multi-process run: evaluate with `python eval.py --checkpoint={run.workdir}`")
    return None
  if run.evaluator is None:
    data = run.data if run.data is not None else load_data(config)
    run.evaluator = evaluation.Evaluator(config, run.model, data.test, data.info)
  say(f"Final evaluation of {run.workdir} (best checkpoint) on {config.data.subjects_test}:")
  _, params, _ = checkpoint.load_checkpoint(run.workdir)
  final = run.evaluator(params, progress=bool(config.train.progress_bar))
  say(evaluation.format_table(final))
  logging_lib.MetricLogger(run.workdir, tensorboard=False).write(
      {"kind": "final", "step": loop.step, **final.get("average", {})}, step=loop.step)
  return final
