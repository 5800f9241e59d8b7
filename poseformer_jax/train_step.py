"""One optimizer step of PoseFormerV2: state, optimizer, loss, input noise, the step itself.

Recipe (all in ``config.train``): AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
decoupled weight decay 0.1 on every parameter, as torch's AdamW over
``model.parameters()``), learning rate x``lr_decay`` after every epoch
(staircase; or ``schedule='warmup_cosine'``), optional global-norm gradient
clipping, MPJPE loss against the target with its root joint zeroed, drop path
active in training, optional 2D input noise (``config.data.noise_std``).

`train_step` is a plain module-level function. Everything it closes over is in
one hashable `StepSpec` (the model, the `Optimizer` hyper-parameters, the mesh,
the dropout key, microbatches, noise), passed as a static argument. The caller
jits it where it is called, as `train_lib` does in its set-up, with `jit_kwargs`
(batch split over ``'data'``, state replicated and donated; on a CPU also
`cpu_tuning`'s compiler options) and a spec from `step_spec` (on a CPU the model
in `cpu_tuning`'s form)::

    spec = step_spec(model, optimizer, mesh, dropout_key)
    step = jax.jit(train_step, **jit_kwargs(mesh))
    state, metrics = step(state, batch, spec)

`make_train_step` does the same for benchmarks and tests. The options make the
jitted step top-level only: to trace it inside another transformation
(``jax.eval_shape``, an outer ``jit``), use `train_step` itself.

Equal specs hash equal, so a second `train` in the same process reuses JAX's
own compilation (static arguments must be positional when ``in_shardings``
is given, hence one positional spec rather than keyword arguments).

The loss is the mean over the global batch, so 1 device and N devices compute
the same number (up to summation order). Drop-path randomness is
``fold_in(dropout_key, step)``; with JAX's partitionable threefry the masks do
not depend on how the batch is sharded.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from poseformer_jax import architectures
from poseformer_jax import augment
from poseformer_jax import cpu_tuning
from poseformer_jax import model as model_lib
from poseformer_jax import parallel
from poseformer_jax import trajectory
from poseformer_jax.errors import ConfigError

SCHEDULES = ("exponential", "warmup_cosine")


@struct.dataclass
class TrainState:
  """Everything the jitted step updates. `step` counts completed optimizer steps."""

  step: jax.Array
  params: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """AdamW with its learning-rate schedule and optional clipping, as hashable hyper-parameters.

  Used like an optax ``GradientTransformation`` (`init`, `update`); equal
  recipes compare equal, so the optimizer can be a static argument of the step.
  """

  learning_rate: float
  weight_decay: float
  b1: float
  b2: float
  eps: float
  steps_per_epoch: int
  epochs: int
  schedule: str = "exponential"
  lr_decay: float = 0.99
  warmup_steps: int = 0
  end_lr_ratio: float = 0.01
  grad_clip_norm: float = 0.0

  @classmethod
  def from_config(cls, train_cfg, steps_per_epoch: int) -> "Optimizer":
    kind = train_cfg.get("schedule", "exponential")
    if kind not in SCHEDULES:
      raise ConfigError(f"train.schedule must be 'exponential' or 'warmup_cosine', got {kind!r}")
    return cls(learning_rate=float(train_cfg.learning_rate),
               weight_decay=float(train_cfg.weight_decay), b1=float(train_cfg.adam_b1),
               b2=float(train_cfg.adam_b2), eps=float(train_cfg.adam_eps),
               steps_per_epoch=int(steps_per_epoch), epochs=int(train_cfg.epochs), schedule=kind,
               lr_decay=float(train_cfg.lr_decay),
               warmup_steps=int(train_cfg.get("warmup_steps", 0)),
               end_lr_ratio=float(train_cfg.get("end_lr_ratio", 0.01)),
               grad_clip_norm=float(train_cfg.get("grad_clip_norm", 0.0)))

  def learning_rate_fn(self) -> optax.Schedule:
    """'exponential' (upstream): lr * lr_decay ** epoch, constant within an epoch.
    'warmup_cosine': linear warm-up over `warmup_steps` to lr, then a cosine to
    lr * `end_lr_ratio` at the last step of `epochs`."""
    if self.schedule == "warmup_cosine":
      total = max(self.steps_per_epoch * self.epochs, 2)
      return optax.warmup_cosine_decay_schedule(
          init_value=0.0, peak_value=self.learning_rate,
          warmup_steps=min(self.warmup_steps, total - 1), decay_steps=total,
          end_value=self.learning_rate * self.end_lr_ratio)
    return optax.exponential_decay(
        init_value=self.learning_rate, transition_steps=max(self.steps_per_epoch, 1),
        decay_rate=self.lr_decay, staircase=True)

  def transform(self) -> optax.GradientTransformation:
    """torch.optim.AdamW(model.parameters(), lr, weight_decay=wd): decay on every leaf;
    `grad_clip_norm` > 0 clips the global gradient norm first."""
    adamw = optax.adamw(learning_rate=self.learning_rate_fn(), b1=self.b1, b2=self.b2,
                        eps=self.eps, weight_decay=self.weight_decay)
    if self.grad_clip_norm > 0:
      return optax.chain(optax.clip_by_global_norm(self.grad_clip_norm), adamw)
    return adamw

  def init(self, params):
    return self.transform().init(params)

  def update(self, grads, state, params=None):
    return self.transform().update(grads, state, params)


def validate_config(config) -> None:
  """Raises ConfigError, in one line, for a training config that cannot run."""
  t = config.train
  for name in ("batch_size", "epochs", "checkpoint_every_epochs", "keep_checkpoints"):
    if int(t[name]) < 1:
      raise ConfigError(f"train.{name} must be >= 1, got {t[name]}")
  if int(t.grad_accum_steps) < 0:
    raise ConfigError("train.grad_accum_steps must be >= 1 (microbatches per step) or 0 "
                      f"(automatic), got {t.grad_accum_steps}")
  if float(t.learning_rate) <= 0 or not math.isfinite(float(t.learning_rate)):
    raise ConfigError(f"train.learning_rate must be positive, got {t.learning_rate}")
  if config.model.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"model.dtype must be 'float32' or 'bfloat16', got {config.model.dtype!r}")
  Optimizer.from_config(t, 1)  # an unknown schedule fails here, in one line
  try:  # traces the model once (no compile) so a bad architecture fails here, in one line
    model = architectures.from_config(config.model)
    jax.eval_shape(model.init, jax.random.PRNGKey(0),
                   jnp.zeros((1, model.num_frames, model.num_joints, 2), jnp.float32))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"invalid model config: {str(e).splitlines()[0]}") from None


def learning_rate_schedule(train_cfg, steps_per_epoch: int) -> optax.Schedule:
  """The learning rate per optimizer step (see `Optimizer.learning_rate_fn`)."""
  return Optimizer.from_config(train_cfg, steps_per_epoch).learning_rate_fn()


def make_optimizer(train_cfg, steps_per_epoch: int) -> Optimizer:
  """The optimizer of ``config.train`` (see `Optimizer`)."""
  return Optimizer.from_config(train_cfg, steps_per_epoch)


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


def add_input_noise(inputs: jax.Array, rng: jax.Array, noise_std: float
                    ) -> tuple[jax.Array, jax.Array]:
  """2D input-noise augmentation. Returns (noisy inputs, the rng left for drop path).

  Gaussian noise in normalised screen units (1.0 = half the image width; 0.01
  is 5 px on a 1000-px camera) with a standard deviation drawn per sample
  uniformly in [0, noise_std], so the model sees clean and detector-like
  inputs alike. ``noise_std`` <= 0 returns the inputs and rng unchanged.
  """
  if noise_std <= 0:
    return inputs, rng
  rng, k_scale, k_noise = jax.random.split(rng, 3)
  scale = jax.random.uniform(k_scale, (inputs.shape[0],) + (1,) * (inputs.ndim - 1),
                             maxval=noise_std)
  return inputs + scale * jax.random.normal(k_noise, inputs.shape, inputs.dtype), rng


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """What `train_step` closes over; hashable, its static argument.

  model: the PoseFormerV2. optimizer: an `Optimizer` (or any hashable object
  with optax's init/update). mesh: the 1-D 'data' mesh. dropout_key: the raw
  uint32 key as a tuple of ints. accum_steps: microbatches per step.
  noise_std: 2D input noise (`add_input_noise`). camera_rotation: trajectory
  training's random camera turn (`trajectory.rotate_cameras`). detector_noise:
  `augment.DetectorNoise` or None.
  """

  model: model_lib.PoseFormerV2
  optimizer: Any
  mesh: Mesh
  dropout_key: tuple[int, ...]
  accum_steps: int = 1
  noise_std: float = 0.0
  camera_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
  detector_noise: augment.DetectorNoise | None = None


def _loss(params, inputs, targets, rng, *, model, noise_std, camera_rotation=(0.0, 0.0, 0.0),
          detector_noise=None):
  """The batch's loss: MPJPE for pose models; for trajectory models the inverse-depth
  weighted root error, after a random camera rotation per window. Detector-shaped
  noise (`augment.DetectorNoise`), then the isotropic noise, on the inputs."""
  if architectures.is_trajectory(model):
    rng, k_rot = jax.random.split(rng)
    inputs, targets = trajectory.rotate_cameras(inputs, targets, k_rot, camera_rotation)
  if detector_noise is not None:
    inputs, rng = detector_noise.apply(inputs, rng)
  inputs, rng = add_input_noise(inputs, rng, noise_std)
  pred = model.apply({"params": params}, inputs, deterministic=False, rngs={"dropout": rng})
  if architectures.is_trajectory(model):
    return trajectory.root_loss(pred, targets)
  return mpjpe_loss(pred, targets)


def _accumulated(grad_fn, params, batch: dict, rng, spec: StepSpec):
  """Loss and gradient of the whole batch, run as `accum_steps` microbatches (`lax.scan`).

  Microbatch i takes rows i, i+M, i+2M, ... so every device keeps working on
  its own rows; its drop-path key is ``fold_in(rng, i)``. Equal microbatches:
  the mean of their losses and gradients is the whole batch's.
  """
  m = spec.accum_steps
  micro = NamedSharding(spec.mesh, P(None, parallel.DATA_AXIS))

  def split(x):  # (B, ...) -> (M, B/M, ...)
    x = x.reshape((x.shape[0] // m, m) + x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, micro)

  def body(carry, xs):
    loss_sum, grad_sum = carry
    i, inputs, targets = xs
    loss, grads = grad_fn(params, inputs, targets, jax.random.fold_in(rng, i))
    return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  xs = (jnp.arange(m), split(batch["inputs"]), split(batch["targets"]))
  (loss_sum, grad_sum), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zeros), xs)
  return loss_sum / m, jax.tree.map(lambda g: g / m, grad_sum)


def train_step(state: TrainState, batch: dict, spec: StepSpec) -> tuple[TrainState, dict]:
  """(state, batch) -> (state, {'loss', 'grad_norm'}): one optimizer update.

  `batch` holds global arrays sharded over 'data': inputs (B, F, J, 2) and
  targets (B, 1, J, 3). The loss is the mean over all B samples; with
  ``spec.accum_steps`` > 1 the same update is computed in microbatches
  (a fraction of the activation memory). Jit it with ``static_argnums=2``.
  """
  rng = jax.random.fold_in(jnp.asarray(spec.dropout_key, jnp.uint32), state.step)
  grad_fn = jax.value_and_grad(functools.partial(_loss, model=spec.model,
                                                 noise_std=spec.noise_std,
                                                 camera_rotation=spec.camera_rotation,
                                                 detector_noise=spec.detector_noise))
  if spec.accum_steps == 1:
    loss, grads = grad_fn(state.params, batch["inputs"], batch["targets"], rng)
  else:
    loss, grads = _accumulated(grad_fn, state.params, batch, rng, spec)
  updates, opt_state = spec.optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def step_spec(model: model_lib.PoseFormerV2, optimizer, mesh: Mesh, dropout_key: np.ndarray,
              accum_steps: int = 1, noise_std: float = 0.0,
              camera_rotation=(0.0, 0.0, 0.0),
              detector_noise: augment.DetectorNoise | None = None) -> StepSpec:
  """The `StepSpec` of a run; on a CPU the model's spatial attention is the form
  `cpu_tuning` picks for speed (same parameters, same values). `camera_rotation`:
  the largest random camera tilt, pan and roll (degrees) of trajectory training."""
  return StepSpec(model=cpu_tuning.tuned_model(model), optimizer=optimizer, mesh=mesh,
                  dropout_key=key_tuple(dropout_key), accum_steps=int(accum_steps),
                  noise_std=float(noise_std),
                  camera_rotation=tuple(float(a) for a in camera_rotation),
                  detector_noise=detector_noise)


def spec_from_config(config, model, optimizer, mesh: Mesh, dropout_key: np.ndarray,
                     accum_steps: int = 1) -> StepSpec:
  """The run's `StepSpec`, its augmentation from ``config.data`` (noise_std,
  camera_rotation, the detector noise of `augment.from_config`)."""
  d = config.data
  return step_spec(model, optimizer, mesh, dropout_key, accum_steps=accum_steps,
                   noise_std=float(d.get("noise_std", 0.0)),
                   camera_rotation=tuple(d.get("camera_rotation", (0.0, 0.0, 0.0))),
                   detector_noise=augment.from_config(d))


def microbatches(setting: int, model_cfg, global_batch: int, mesh: Mesh) -> int:
  """Microbatches per step for ``train.grad_accum_steps`` = `setting`: the setting when
  >= 1; for 0 (automatic) `cpu_tuning.train_microbatches` of this process's share of
  the batch over its devices of `mesh` (1 off a CPU)."""
  if int(setting) >= 1:
    return int(setting)
  return cpu_tuning.train_microbatches(model_cfg, int(global_batch) // jax.process_count(),
                                       len(mesh.local_devices))


def jit_kwargs(mesh: Mesh) -> dict:
  """`jax.jit` arguments for `train_step` over `mesh`: the spec static, the state
  donated and replicated, the batch split over 'data', and on a CPU `cpu_tuning`'s
  compiler options for training (XLA's defaults elsewhere)."""
  repl = parallel.replicated(mesh)
  return dict(static_argnums=2, donate_argnums=0,
              in_shardings=(repl, parallel.batch_sharding(mesh)), out_shardings=(repl, repl),
              compiler_options=cpu_tuning.compiler_options("train"))


def make_train_step(model: model_lib.PoseFormerV2, optimizer, mesh: Mesh,
                    dropout_key: np.ndarray, accum_steps: int = 1, input_noise_std: float = 0.0
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """`train_step` jitted over `mesh` as the training loop does it, for benchmarks and tests."""
  spec = step_spec(model, optimizer, mesh, dropout_key, accum_steps, input_noise_std)
  step = jax.jit(train_step, **jit_kwargs(mesh))
  return lambda state, batch: step(state, batch, spec)


def _fresh_state(model: model_lib.PoseFormerV2, optimizer, init_key: tuple[int, ...]
                 ) -> TrainState:
  dummy = jnp.zeros((1, model.num_frames, model.num_joints, 2), jnp.float32)
  key = jnp.asarray(init_key, jnp.uint32)
  params = model.init(key, dummy, deterministic=True)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def init_state(model: model_lib.PoseFormerV2, optimizer, init_key: jax.Array, mesh: Mesh, *,
               abstract: bool = False) -> TrainState:
  """A fresh replicated TrainState (or its abstract shapes/shardings with `abstract`)."""
  repl = parallel.replicated(mesh)
  init = jax.jit(_fresh_state, static_argnums=(0, 1, 2), out_shardings=repl)
  args = (model, optimizer, key_tuple(init_key))
  if abstract:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                        jax.eval_shape(lambda: init(*args)))
  return init(*args)


def with_params(state: TrainState, params, optimizer, mesh: Mesh) -> TrainState:
  """`state` with `params` (host or device arrays, replicated over `mesh`) and a fresh
  optimizer state for them: the start of a fine-tuning run."""
  repl = parallel.replicated(mesh)
  params = jax.device_put(params, repl)
  return state.replace(params=params,
                       opt_state=jax.jit(optimizer.init, out_shardings=repl)(params))


def rng_keys(seed: int) -> tuple[jax.Array, np.ndarray]:
  """(init_key, dropout_key) from the training seed; both raw uint32 keys."""
  init_key, dropout_key = jax.random.split(jax.random.PRNGKey(int(seed)))
  return init_key, np.asarray(jax.device_get(dropout_key))


def key_tuple(key) -> tuple[int, ...]:
  """A raw uint32 key as a hashable tuple of ints (`StepSpec.dropout_key`)."""
  return tuple(int(v) for v in np.asarray(key).ravel())
