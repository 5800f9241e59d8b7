"""Data-parallel training of PoseFormerV2 (the upstream recipe) with exact resume.

Entry point: `train(config, workdir)`; ``train.py`` is a thin command line over it.

Recipe (all in ``config.train``): AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
decoupled weight decay 0.1 on every parameter, as torch's AdamW over
``model.parameters()``), learning rate x``lr_decay`` after every epoch
(staircase), MPJPE loss against the target with its root joint zeroed, drop
path active in training, flip augmentation in the input pipeline.

Parallelism: one `jax.jit` train step over a 1-D device mesh (`parallel`),
batch sharded on ``'data'``, state replicated and donated. The loss is the
mean over the global batch, so 1 device and N devices compute the same number
(up to summation order). Drop-path randomness is
``fold_in(dropout_key, step)``; with JAX's partitionable threefry the masks do
not depend on how the batch is sharded.

Workdir layout::

    WORKDIR/checkpoints/<step>/{params,opt_state,config,meta}   latest K, for resuming
    WORKDIR/best/<step>/{params,config,meta}                    best validation P1
    WORKDIR/log.jsonl, WORKDIR/tensorboard/                     logs (`logging_lib`)

Arrays are saved as host numpy copies (written by process 0), so a checkpoint
carries no device topology: a run saved on 8 GPUs or 2 processes resumes or
evaluates on 1 CPU. ``params`` is the plain model parameter tree
(`checkpoint.load_checkpoint` reads training workdirs).

Resume: when ``checkpoints/`` holds a step, everything is restored (params,
optimizer state, step, epoch, position inside the epoch, RNG, best P1, running
epoch loss) and the input pipeline restarts at ``epoch(epoch, start_step=k)``,
so an interrupted run ends with the same parameters as an uninterrupted one
(bitwise on CPU with the same devices and CPU thread count: XLA:CPU splits some
reductions by thread count, so e.g. `taskset` to fewer cores changes the last
bits). A checkpoint of another architecture (model block) or of another batch
size / seed / epoch length / accumulation is refused with a `ConfigError`.

Stopping: SIGTERM (and a first Ctrl-C) sets a flag; the current step finishes,
a checkpoint is written and `train` returns with status ``'preempted'``
(bounded by one step, plus the epoch-end validation if the signal lands there).
A non-finite loss or gradient raises `TrainingError` naming the step and epoch,
before any later checkpoint is written, so the last good checkpoint stays intact.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import itertools
import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from poseformer_jax import checkpoint as ckpt_lib
from poseformer_jax import logging_lib
from poseformer_jax import model as model_lib
from poseformer_jax import parallel
from poseformer_jax.errors import ConfigError, PoseFormerError

TRAIN_ITEMS = ("params", "opt_state", "config", "meta")
BEST_ITEMS = ("params", "config", "meta")
META_VERSION = 1


class TrainingError(PoseFormerError, RuntimeError):
  """Training cannot go on: non-finite loss, unwritable workdir, inconsistent pipeline."""


# ----------------------------------------------------------------------------
# State, optimizer, loss, step.


@struct.dataclass
class TrainState:
  """Everything the jitted step updates. `step` counts completed optimizer steps."""

  step: jax.Array
  params: Any
  opt_state: Any


def learning_rate_schedule(train_cfg, steps_per_epoch: int) -> optax.Schedule:
  """lr * lr_decay ** epoch, constant within an epoch (epoch = step // steps_per_epoch)."""
  return optax.exponential_decay(
      init_value=float(train_cfg.learning_rate),
      transition_steps=max(int(steps_per_epoch), 1),
      decay_rate=float(train_cfg.lr_decay),
      staircase=True)


def make_optimizer(train_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
  """AdamW as torch.optim.AdamW(model.parameters(), lr, weight_decay=wd): decay on every leaf."""
  return optax.adamw(
      learning_rate=learning_rate_schedule(train_cfg, steps_per_epoch),
      b1=float(train_cfg.adam_b1), b2=float(train_cfg.adam_b2), eps=float(train_cfg.adam_eps),
      weight_decay=float(train_cfg.weight_decay))


def mpjpe_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean per-joint position error (metres) against the target with its root joint zeroed.

  pred, target: (B, 1, J, 3). Mean over batch, frames and joints. The norm has a
  zero (not NaN) gradient where the error is exactly zero; NaN/inf propagate.
  """
  target = jnp.asarray(target, jnp.float32).at[..., 0, :].set(0.0)
  sq = jnp.sum(jnp.square(jnp.asarray(pred, jnp.float32) - target), axis=-1)
  zero = sq == 0
  dist = jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))
  return jnp.mean(dist)


def init_state(model: model_lib.PoseFormerV2, tx: optax.GradientTransformation,
               init_key: jax.Array, mesh, *, abstract: bool = False) -> TrainState:
  """A fresh replicated TrainState (or its abstract shapes/shardings with `abstract`)."""
  init = make_init_fn(model, tx, init_key, mesh)
  if abstract:
    repl = parallel.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                        jax.eval_shape(init))
  return init()


def make_init_fn(model: model_lib.PoseFormerV2, tx: optax.GradientTransformation,
                 init_key: jax.Array, mesh) -> Callable[[], TrainState]:
  """A jitted zero-argument function returning a fresh replicated TrainState."""
  frames, joints = model.num_frames, model.num_joints
  init_key = np.asarray(jax.device_get(init_key))

  def init():
    dummy = jnp.zeros((1, frames, joints, 2), jnp.float32)
    params = model.init(jnp.asarray(init_key), dummy, deterministic=True)["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  return jax.jit(init, out_shardings=parallel.replicated(mesh))


def make_train_step(model: model_lib.PoseFormerV2, tx: optax.GradientTransformation,
                    mesh, dropout_key: np.ndarray, accum_steps: int = 1
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """The jitted, data-parallel step: (state, batch) -> (state, {'loss', 'grad_norm'}).

  `batch` holds global arrays sharded over 'data': inputs (B, F, J, 2) and
  targets (B, 1, J, 3). The state is replicated and donated. The loss is the
  mean over all B samples; the gradient is its gradient (one optimizer update).

  `accum_steps` > 1 splits the batch into that many microbatches run one after
  the other (`lax.scan`), summing gradients: the same update in a fraction of
  the activation memory. Microbatch i takes rows i, i+M, i+2M, ... so every
  device keeps working on its own rows. Drop-path keys are
  ``fold_in(fold_in(dropout_key, step), i)``.
  """
  dropout_key = np.asarray(dropout_key)
  accum_steps = int(accum_steps)

  def loss_fn(params, inputs, targets, rng):
    pred = model.apply({"params": params}, inputs, deterministic=False, rngs={"dropout": rng})
    return mpjpe_loss(pred, targets)

  grad_fn = jax.value_and_grad(loss_fn)
  micro_sharding = NamedSharding(mesh, P(None, parallel.DATA_AXIS))

  def split(x):  # (B, ...) -> (M, B/M, ...): microbatch i = rows i, i+M, ...
    x = x.reshape((x.shape[0] // accum_steps, accum_steps) + x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, micro_sharding)

  def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    rng = jax.random.fold_in(jnp.asarray(dropout_key), state.step)
    if accum_steps == 1:
      loss, grads = grad_fn(state.params, batch["inputs"], batch["targets"], rng)
    else:
      def body(carry, xs):
        loss_sum, grad_sum = carry
        i, inputs, targets = xs
        loss, grads = grad_fn(state.params, inputs, targets, jax.random.fold_in(rng, i))
        return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

      zeros = jax.tree.map(jnp.zeros_like, state.params)
      xs = (jnp.arange(accum_steps), split(batch["inputs"]), split(batch["targets"]))
      (loss_sum, grad_sum), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zeros), xs)
      loss = loss_sum / accum_steps  # equal microbatches: the mean over the whole batch
      grads = jax.tree.map(lambda g: g / accum_steps, grad_sum)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  repl = parallel.replicated(mesh)
  return jax.jit(step, in_shardings=(repl, parallel.batch_sharding(mesh)),
                 out_shardings=(repl, repl), donate_argnums=(0,))


def rng_keys(seed: int) -> tuple[jax.Array, np.ndarray]:
  """(init_key, dropout_key) from the training seed; both raw uint32 keys."""
  base = jax.random.PRNGKey(int(seed))
  init_key, dropout_key = jax.random.split(base)
  return init_key, np.asarray(jax.device_get(dropout_key))


# Compiled functions reused by later `train` calls in the same process (tests,
# notebooks, resume after an in-process stop), keyed by everything they close over.
_COMPILED: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_COMPILED_MAX = 8


def _memo(key: tuple, build: Callable[[], Any]) -> Any:
  if key in _COMPILED:
    _COMPILED.move_to_end(key)
    return _COMPILED[key]
  value = _COMPILED[key] = build()
  while len(_COMPILED) > _COMPILED_MAX:
    _COMPILED.popitem(last=False)
  return value


def _model_key(config) -> str:
  return json.dumps(config.model.to_dict(), sort_keys=True)


def _mesh_key(mesh) -> tuple:
  return (tuple(int(d.id) for d in mesh.devices.flat), tuple(mesh.axis_names),
          jax.process_count())


# ----------------------------------------------------------------------------
# Data: the colleagues' loaders and pipeline, behind two small seams (tests swap them).


@dataclasses.dataclass
class TrainData:
  """Loaded sequences: `train`/`test` lists of `dataset.Sequence`, and the DatasetInfo."""

  train: list
  test: list
  info: Any


def load_data(config: ml_collections.ConfigDict) -> TrainData:
  """Training and test sequences of ``config.data`` (synthetic data generated if configured)."""
  from poseformer_jax.data import dataset
  train_seqs, info = dataset.load_sequences(config.data, "train")
  test_seqs, _ = dataset.load_sequences(config.data, "test")
  return TrainData(train=train_seqs, test=test_seqs, info=info)


def data_backend(config) -> str:
  """``config.data.backend``, falling back to 'numpy' when TensorFlow is not installed."""
  backend = config.data.backend
  if backend == "tf" and importlib.util.find_spec("tensorflow") is None:
    return "numpy"
  return backend


def build_pipeline(config: ml_collections.ConfigDict, data: TrainData):
  """The training input pipeline: this process's slice of every global batch."""
  from poseformer_jax.data import pipeline
  return pipeline.TrainPipeline(
      data.train, data.info,
      num_frames=config.model.num_frames,
      global_batch=config.train.batch_size,
      seed=config.data.shuffle_seed,
      flip=config.data.flip_augment,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      backend=data_backend(config),
      prefetch=config.data.prefetch)


class Validator:
  """Validation P1/P2/... (mm) on the test split, capped at ``config.eval.max_frames`` per sequence.

  The evaluation protocol (`evaluation.make_predictor` + `evaluation.evaluate`,
  flip test-time augmentation per ``config.eval.flip``) on this process's
  local devices; the Predictor is built once and gets new parameters each call,
  so the forward pass compiles once per run.
  """

  def __init__(self, config, model, data: TrainData):
    self.config, self.model, self.data = config, model, data
    local = jax.local_devices()
    bs = int(config.eval.batch_size)
    self.mesh = parallel.make_mesh(local) if len(local) > 1 and bs % len(local) == 0 else None
    self._predictor = None

  def __call__(self, params) -> dict[str, float]:
    from poseformer_jax import evaluation
    local = parallel.local_copy(params)
    if self._predictor is None:
      key = ("predictor", _model_key(self.config), int(self.config.eval.batch_size),
             bool(self.config.eval.flip), self.data.info,
             _mesh_key(self.mesh) if self.mesh is not None else None)
      self._predictor = _memo(key, lambda: evaluation.make_predictor(
          self.model, local, self.data.info, batch_size=int(self.config.eval.batch_size),
          flip=bool(self.config.eval.flip), mesh=self.mesh))
    self._predictor.params = jax.tree.map(
        lambda old, new: jax.device_put(new, old.sharding), self._predictor.params, local)
    result = evaluation.evaluate(self._predictor, self.data.test, self.data.info,
                                 progress=False, max_frames=int(self.config.eval.max_frames))
    return {k: float(v) for k, v in result["average"].items() if v is not None}


# ----------------------------------------------------------------------------
# Checkpoints.


def _json_safe(x):
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


class Checkpoints:
  """The two orbax managers of a workdir: ``checkpoints/`` (latest K) and ``best/``."""

  def __init__(self, workdir: Path, keep: int):
    self.train_dir = workdir / "checkpoints"
    self.best_dir = workdir / "best"
    if jax.process_index() == 0:
      for d in (self.train_dir, self.best_dir):
        prune_partial_steps(d)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("poseformer_jax.train_lib.prune_partial_steps")
    self.train = ckpt_lib.open_manager(self.train_dir, max_to_keep=max(int(keep), 1),
                                       item_names=TRAIN_ITEMS)
    self.best = ckpt_lib.open_manager(self.best_dir, max_to_keep=1, item_names=BEST_ITEMS,
                                      best_metric="val_p1")

  def latest_step(self) -> int | None:
    return self.train.latest_step()

  def save(self, state: TrainState, config, meta: dict) -> bool:
    step = int(meta["step"])
    if step in self.train.all_steps():
      return False
    self.train.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(host_params := _host(state.params)),
        opt_state=ocp.args.StandardSave(_host(state.opt_state)),
        config=ocp.args.JsonSave(config.to_dict()),
        meta=ocp.args.JsonSave({**{k: _json_safe(v) for k, v in meta.items()},
                                "params_sha256": ckpt_lib.params_digest(host_params)})))
    self.train.wait_until_finished()
    if jax.process_index() == 0:
      ckpt_lib.empty_trash(self.train_dir)
    return True

  def save_best(self, state: TrainState, config, meta: dict, val_p1: float) -> bool:
    step = int(meta["step"])
    if step in self.best.all_steps():
      return False
    self.best.save(step, metrics={"val_p1": float(val_p1)}, args=ocp.args.Composite(
        params=ocp.args.StandardSave(host_params := _host(state.params)),
        config=ocp.args.JsonSave(config.to_dict()),
        meta=ocp.args.JsonSave({**{k: _json_safe(v) for k, v in meta.items()},
                                "params_sha256": ckpt_lib.params_digest(host_params)})))
    self.best.wait_until_finished()
    if jax.process_index() == 0:
      ckpt_lib.empty_trash(self.best_dir)
    return True

  def best_p1(self) -> float | None:
    """val_p1 of the checkpoint in ``best/`` (None when empty)."""
    step = self.best.latest_step()
    if step is None:
      return None
    try:
      meta = self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      return meta.get("val_p1")
    except Exception:  # noqa: BLE001 - a damaged best/ must not block resuming
      return None

  def restore(self, step: int, abstract: TrainState) -> tuple[TrainState, dict]:
    where = self.train_dir / str(step)
    try:
      out = self.train.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract.params),
          opt_state=ocp.args.StandardRestore(abstract.opt_state),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged files
      msg = str(e).splitlines()[0] if str(e) else ""
      raise ckpt_lib.CheckpointError(
          f"{where}: cannot restore the training state ({type(e).__name__}: {msg})") from None
    meta = dict(out["meta"])
    return TrainState(step=_replicated_scalar(int(meta["step"]), abstract.step.sharding),
                      params=out["params"], opt_state=out["opt_state"]), meta

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
  import shutil
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


def _host(tree: Any) -> Any:
  """Host numpy copies of replicated arrays: checkpoints carry no device topology, so a
  run saved on N devices / P processes restores on any other (process 0 writes them)."""
  return jax.tree.map(np.array, parallel.local_copy(tree))


def _replicated_scalar(value: int, sharding) -> jax.Array:
  return jax.jit(lambda: jnp.asarray(value, jnp.int32), out_shardings=sharding)()


def check_resumable(stored: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                    meta: dict, steps_per_epoch: int, where: Path) -> None:
  """Raises ConfigError when the checkpoint cannot continue as this run."""
  want, have = config.model.to_dict(), stored.model.to_dict()
  diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
  if diff:
    detail = ", ".join(f"{k}: checkpoint {have.get(k)!r} vs config {want.get(k)!r}" for k in diff)
    raise ConfigError(f"{where}: cannot resume: the checkpoint's model differs from the config "
                      f"({detail}); use a new --workdir or the checkpoint's settings")
  checks = [("train.batch_size", stored.train.batch_size, config.train.batch_size),
            ("train.seed", stored.train.seed, config.train.seed),
            ("data.shuffle_seed", stored.data.shuffle_seed, config.data.shuffle_seed),
            ("train.grad_accum_steps", stored.train.get("grad_accum_steps", 1),
             config.train.grad_accum_steps),
            ("steps per epoch", meta.get("steps_per_epoch"), steps_per_epoch)]
  bad = [f"{name}: checkpoint {a!r} vs now {b!r}" for name, a, b in checks if a != b]
  if bad:
    raise ConfigError(f"{where}: cannot resume exactly ({'; '.join(bad)}); "
                      "use a new --workdir or the checkpoint's settings")


# ----------------------------------------------------------------------------
# The loop.


@dataclasses.dataclass
class TrainResult:
  """What `train` returns.

  status: 'completed' | 'preempted' (SIGTERM/Ctrl-C) | 'stopped' (train.stop_after_steps).
  history: the epoch records written to log.jsonl by this call.
  final: the final evaluation dict (evaluation.run_eval) when it ran, else None.
  """

  status: str
  step: int
  epoch: int
  best_p1: float | None
  history: list
  final: dict | None
  workdir: str
  losses: list = dataclasses.field(default_factory=list)  # per-step train loss (m), this call
  state: TrainState | None = None


class _StopFlag:
  """SIGTERM / first SIGINT -> stop after the current step (main thread only)."""

  def __init__(self):
    self.reason: str | None = None
    self._old = {}

  def install(self):
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

  def restore(self):
    for sig, old in self._old.items():
      signal.signal(sig, old)
    self._old = {}


def prepare_workdir(workdir: str | os.PathLike) -> Path:
  """Creates the workdir and checks that it is writable (TrainingError otherwise)."""
  workdir = Path(workdir).absolute()
  if workdir.exists() and not workdir.is_dir():
    raise TrainingError(f"{workdir}: workdir exists and is not a directory")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write_test.{os.getpid()}"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise TrainingError(f"{workdir}: workdir is not writable ({e.strerror or e})") from None
  return workdir


def validate_config(config: ml_collections.ConfigDict) -> None:
  t = config.train
  for name in ("batch_size", "epochs", "checkpoint_every_epochs", "keep_checkpoints",
               "grad_accum_steps"):
    if int(t[name]) < 1:
      raise ConfigError(f"train.{name} must be >= 1, got {t[name]}")
  if float(t.learning_rate) <= 0 or not math.isfinite(float(t.learning_rate)):
    raise ConfigError(f"train.learning_rate must be positive, got {t.learning_rate}")
  if config.model.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"model.dtype must be 'float32' or 'bfloat16', got {config.model.dtype!r}")
  try:  # traces the model once (no compile) so a bad architecture fails here, in one line
    model = model_lib.from_config(config.model)
    jax.eval_shape(model.init, jax.random.PRNGKey(0),
                   jnp.zeros((1, model.num_frames, model.num_joints, 2), jnp.float32))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"invalid model config: {str(e).splitlines()[0]}") from None


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
          data: TrainData | None = None, pipeline: Any = None,
          validate: Callable[[Any], dict] | None = None,
          print_fn: Callable[[str], None] | None = None) -> TrainResult:
  """Trains (or resumes) in `workdir`. See the module docstring.

  Args:
    config: the full config (``base_config()`` schema).
    workdir: output folder (created); an existing run in it is resumed.
    data: preloaded sequences (default: `load_data(config)`).
    pipeline: a training pipeline object with the `TrainPipeline` interface
      (default: `build_pipeline(config, data)`).
    validate: params -> {'p1': mm, 'p2': mm, ...} (default: `Validator`).
    print_fn: where status lines go (default: print on process 0).
  Returns:
    a `TrainResult`. Raises `PoseFormerError` subclasses for user-facing failures.
  """
  parallel.maybe_initialize_distributed(config.train)  # before anything touches a device
  validate_config(config)
  # From here on SIGTERM / Ctrl-C only set a flag: the run stops after its next step.
  stop = _StopFlag().install()
  try:
    return _train(config, workdir, stop, data=data, pipeline=pipeline, validate=validate,
                  print_fn=print_fn)
  finally:
    stop.restore()


def _train(config, workdir, stop: _StopFlag, *, data, pipeline, validate, print_fn
           ) -> TrainResult:
  is_main = jax.process_index() == 0
  say = print_fn or ((lambda s: print(s, flush=True)) if is_main else (lambda s: None))
  workdir = prepare_workdir(workdir)

  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh, config.train.grad_accum_steps)
  model = model_lib.from_config(config.model)
  if pipeline is None or (validate is None and config.train.eval_every_epochs > 0):
    data = data if data is not None else load_data(config)
  if pipeline is None:
    pipeline = build_pipeline(config, data)
  steps_per_epoch = int(pipeline.steps_per_epoch)
  if config.train.max_steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, int(config.train.max_steps_per_epoch))
  if steps_per_epoch < 1:
    raise TrainingError(f"the training set gives no full batch of {config.train.batch_size}; "
                        "lower train.batch_size or add data")
  if validate is None and config.train.eval_every_epochs > 0:
    validate = Validator(config, model, data)

  tx = make_optimizer(config.train, steps_per_epoch)
  schedule = learning_rate_schedule(config.train, steps_per_epoch)
  init_key, dropout_key = rng_keys(config.train.seed)
  seed_key = int(config.train.seed)
  t = config.train
  run_key = (_model_key(config), float(t.learning_rate), float(t.lr_decay),
             float(t.weight_decay), float(t.adam_b1), float(t.adam_b2), float(t.adam_eps),
             steps_per_epoch) + _mesh_key(mesh)
  ckpts = Checkpoints(workdir, config.train.keep_checkpoints)
  meta = {"version": META_VERSION, "step": 0, "epoch": 0, "step_in_epoch": 0,
          "steps_per_epoch": steps_per_epoch, "global_batch": int(config.train.batch_size),
          "seed": int(config.train.seed), "shuffle_seed": int(config.data.shuffle_seed),
          "dropout_key": [int(v) for v in np.asarray(dropout_key).ravel()],
          "best_p1": None, "best_step": None, "epoch_loss_sum": 0.0, "epoch_loss_steps": 0,
          "epoch_samples": 0}

  try:
    latest = ckpts.latest_step()
    if latest is not None:
      stored, _, _ = ckpt_lib.load_config(ckpts.train_dir, latest)
      restored_meta = ckpts.train.restore(
          latest, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      check_resumable(stored, config, restored_meta, steps_per_epoch,
                      ckpts.train_dir / str(latest))
      state, restored_meta = ckpts.restore(latest, init_state(model, tx, init_key, mesh,
                                                              abstract=True))
      meta.update(restored_meta)
      best_on_disk = ckpts.best_p1()
      if best_on_disk is not None and (meta["best_p1"] is None
                                       or best_on_disk < meta["best_p1"]):
        meta["best_p1"] = best_on_disk
      say(f"Resuming from {ckpts.train_dir / str(latest)}: step {meta['step']}, epoch "
          f"{meta['epoch'] + 1}, step {meta['step_in_epoch']} of {steps_per_epoch} in the epoch")
    else:
      state = _memo(("init", seed_key) + run_key,
                    lambda: make_init_fn(model, tx, init_key, mesh))()
      n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
      say(f"Training {config.get('variant', '')} ({n_params:,} parameters) on "
          f"{mesh.devices.size} device(s) / {jax.process_count()} process(es); global batch "
          f"{config.train.batch_size}, {steps_per_epoch} steps per epoch, "
          f"{config.train.epochs} epochs; workdir {workdir}")
  except BaseException:
    ckpts.close()
    raise

  accum = int(config.train.grad_accum_steps)
  train_step = _memo(("step", seed_key, accum) + run_key,
                     lambda: make_train_step(model, tx, mesh, dropout_key, accum))
  logger = logging_lib.MetricLogger(workdir, enabled=is_main,
                                    tensorboard=config.train.tensorboard)
  history = []
  step_losses = []
  status = "completed"
  epochs = int(config.train.epochs)
  global_batch = int(config.train.batch_size)
  ckpt_every_steps = int(config.train.checkpoint_every_steps)
  stop_after = int(config.train.stop_after_steps)
  log_every = max(int(config.train.log_every_steps), 1)

  try:
    while meta["epoch"] < epochs:
      epoch = meta["epoch"]
      start = meta["step_in_epoch"]
      if start == 0:
        meta.update(epoch_loss_sum=0.0, epoch_loss_steps=0, epoch_samples=0)
      bar = logging_lib.Progress(total=steps_per_epoch, initial=start,
                                 desc=f"epoch {epoch + 1}/{epochs}",
                                 enabled=is_main and config.train.progress_bar)
      t_epoch = time.perf_counter()
      t_last, n_last = t_epoch, 0
      pending = None  # (global step, step in epoch, metrics): fetched one step late
      reason = None

      def settle():
        nonlocal pending, t_last, n_last
        if pending is None:
          return
        gstep, k, metrics = pending
        pending = None
        loss = parallel.to_float(metrics["loss"])
        grad_norm = parallel.to_float(metrics["grad_norm"])
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
          what = f"loss ({loss})" if not math.isfinite(loss) else f"gradient norm ({grad_norm})"
          raise TrainingError(
              f"non-finite {what} at step {gstep} (epoch {epoch + 1}, step {k} of "
              f"{steps_per_epoch}); stopped without saving this state; the last good "
              f"checkpoint is {_last_good(ckpts)}")
        step_losses.append(loss)
        meta["epoch_loss_sum"] += loss
        meta["epoch_loss_steps"] += 1
        meta["epoch_samples"] += global_batch
        n_last += 1
        now = time.perf_counter()
        rate = None
        if n_last and now > t_last and (n_last >= log_every or k == steps_per_epoch):
          rate = n_last * global_batch / (now - t_last)
          t_last, n_last = now, 0
        bar.update(1, loss_mm=loss * 1000.0, samples_per_s=rate)
        if gstep % log_every == 0:
          logger.scalars(gstep, {"train/step_loss_mm": loss * 1000.0, "train/grad_norm": grad_norm})

      batches = itertools.islice(pipeline.epoch(epoch, start_step=start), steps_per_epoch - start)
      k = start
      for local in batches:
        batch = parallel.global_batch(local, mesh)
        state, metrics = train_step(state, batch)
        k += 1
        settle()
        pending = (meta["step"] + 1, k, metrics)
        meta["step"] += 1
        meta["step_in_epoch"] = k
        if ckpt_every_steps > 0 and meta["step"] % ckpt_every_steps == 0 and k < steps_per_epoch:
          settle()
          ckpts.save(state, config, meta)
        if parallel.any_process(stop.reason is not None):
          reason = "preempted"
        elif stop_after > 0 and meta["step"] >= stop_after:
          reason = "stopped"
        if reason:
          break
      settle()
      bar.close()

      if k < steps_per_epoch:
        if reason is None:
          raise TrainingError(f"the input pipeline ended after {k} of {steps_per_epoch} "
                              f"steps of epoch {epoch + 1}")
        ckpts.save(state, config, meta)
        say(f"{'Pre-empted' if reason == 'preempted' else 'Stopped'} at step {meta['step']} "
            f"(epoch {epoch + 1}, step {k}/{steps_per_epoch}); checkpoint saved in "
            f"{ckpts.train_dir}; run the same command again to resume")
        status = reason
        break

      # The epoch is complete.
      elapsed = time.perf_counter() - t_epoch
      train_loss = meta["epoch_loss_sum"] / max(meta["epoch_loss_steps"], 1)
      record = {"kind": "epoch", "epoch": epoch + 1, "step": meta["step"],
                "train_loss_mm": train_loss * 1000.0,
                "lr": float(schedule(epoch * steps_per_epoch)),
                "samples_per_s": (steps_per_epoch - start) * global_batch / max(elapsed, 1e-9),
                "epoch_time_s": elapsed}
      meta.update(epoch=epoch + 1, step_in_epoch=0)
      last_epoch = epoch + 1 == epochs
      eval_every = int(config.train.eval_every_epochs)
      if validate is not None and eval_every > 0 and ((epoch + 1) % eval_every == 0 or last_epoch):
        t_val = time.perf_counter()
        val = validate(state.params)
        record["val_time_s"] = time.perf_counter() - t_val
        p1 = parallel.broadcast_from_first(val.get("p1"))
        record.update(val_p1=p1, val_p2=val.get("p2"))
        if p1 is not None and math.isfinite(p1) and (meta["best_p1"] is None
                                                    or p1 < meta["best_p1"]):
          meta.update(best_p1=p1, best_step=meta["step"])
          ckpts.save_best(state, config, {**meta, "val_p1": p1}, p1)
          record["best"] = True
      history.append(record)
      logger.write(record, step=meta["step"], tb_scalars={
          "train/loss_mm": record["train_loss_mm"], "train/lr": record["lr"],
          "train/samples_per_s": record["samples_per_s"],
          "val/p1_mm": record.get("val_p1"), "val/p2_mm": record.get("val_p2")})
      logger.flush()
      say(_epoch_line(record, epochs))
      if (epoch + 1) % int(config.train.checkpoint_every_epochs) == 0 or last_epoch or reason:
        ckpts.save(state, config, meta)
      if reason:
        say(f"{'Pre-empted' if reason == 'preempted' else 'Stopped'} at step {meta['step']} "
            f"(end of epoch {epoch + 1}); checkpoint saved in {ckpts.train_dir}; run the same "
            "command again to resume")
        status = reason
        break
  finally:
    logger.close()
    ckpts.close()

  final = None
  if status == "completed" and not history:
    say(f"{workdir} already holds a completed run ({meta['epoch']} epochs); raise "
        "train.epochs to continue it")
  if status == "completed":
    say(f"Training complete: {meta['step']} steps, {meta['epoch']} epochs"
        + (f", best validation P1 {meta['best_p1']:.2f} mm (step {meta['best_step']})"
           if meta["best_p1"] is not None else ""))
    if config.train.final_eval and jax.process_count() == 1:
      final = final_evaluation(config, workdir, say)
      logging_lib.MetricLogger(workdir, tensorboard=False).write(
          {"kind": "final", "step": meta["step"], **final.get("average", {})}, step=meta["step"])
    elif config.train.final_eval:
      say(f"Multi-process run: evaluate with `python eval.py --checkpoint={workdir}`")
  return TrainResult(status=status, step=meta["step"], epoch=meta["epoch"],
                     best_p1=meta["best_p1"], history=history, final=final,
                     workdir=str(workdir), losses=step_losses, state=state)


def final_evaluation(config, workdir: Path, say: Callable[[str], None]) -> dict:
  """The full evaluation protocol on the best (else latest) checkpoint; prints the table."""
  from poseformer_jax import evaluation
  say(f"Final evaluation of {workdir} (best checkpoint) on {config.data.subjects_test}:")
  result = evaluation.run_eval(config, str(workdir), progress=bool(config.train.progress_bar))
  say(evaluation.format_table(result))
  return result


def _last_good(ckpts: Checkpoints) -> str:
  step = ckpts.latest_step()
  return f"{ckpts.train_dir / str(step)}" if step is not None else "(none yet)"


def _epoch_line(record: dict, epochs: int) -> str:
  parts = [f"epoch {record['epoch']}/{epochs}", f"step {record['step']}",
           f"loss {record['train_loss_mm']:.2f} mm", f"lr {record['lr']:.3e}",
           f"{record['samples_per_s']:.0f} samples/s"]
  if record.get("val_p1") is not None:
    parts.append(f"val P1 {record['val_p1']:.2f} mm")
  if record.get("val_p2") is not None:
    parts.append(f"P2 {record['val_p2']:.2f} mm")
  if record.get("best"):
    parts.append("(best)")
  return " | ".join(parts)
