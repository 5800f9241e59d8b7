"""Training: loss goes down, 1 vs 4 devices, exact resume, SIGTERM, non-finite loss, errors.

A tiny PoseFormerV2 (F=9, f=n=3, width 8, depth 2 so that drop path is active
in the second block) on the suite's small shared synthetic Human3.6M. In-process
runs reuse JAX's compilations of the train step (its static `StepSpec` is
hashable); subprocess runs share a persistent XLA compilation cache in a
temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from poseformer_jax import checkpoint, config_lib, logging_lib, train_lib, train_step
from poseformer_jax import workdir as workdir_lib
from poseformer_jax.errors import ConfigError

from conftest import require

REPO = Path(__file__).resolve().parent.parent

# The tiny architecture and recipe, as config overrides (also used on train.py's command line).
TINY = {
    "model.num_frames": 9, "model.kept_frames": 3, "model.kept_coeffs": 3,
    "model.embed_dim_ratio": 8, "model.depth": 2, "model.num_heads": 2,
    "data.subjects_train": "S1,S5", "data.subjects_test": "S9,S11", "data.keypoints": "gt",
    "data.backend": "numpy",
    "train.batch_size": 64, "train.epochs": 2, "train.max_steps_per_epoch": 12,
    "train.learning_rate": 1e-3, "train.lr_decay": 0.9, "train.eval_every_epochs": 1,
    "train.final_eval": False, "train.progress_bar": False, "train.log_every_steps": 4,
    "train.keep_checkpoints": 2,
    "eval.batch_size": 64, "eval.max_frames": 24,
}
TOTAL_STEPS = 24


def tiny_config(data_root, **overrides):
  config = config_lib.base_config()
  for key, value in {**TINY, "data.root": str(data_root), **overrides}.items():
    block, field = key.split(".")
    config[block][field] = value
  return config


def cli_overrides(data_root, **overrides) -> list[str]:
  items = {**TINY, "data.root": str(data_root), **overrides}
  return [f"--config.{k}={v}" for k, v in items.items()]


def params_equal(a, b) -> bool:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(
      np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def restored_params(workdir, step=None):
  mngr = checkpoint.open_manager(Path(workdir) / "checkpoints", read_only=True,
                                 item_names=checkpoint.TRAIN_ITEMS)
  step = mngr.latest_step() if step is None else step
  out = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(),
                                                   meta=ocp.args.JsonRestore()))
  mngr.close()
  return out["params"], out["meta"]


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
  """A persistent XLA cache shared by this module's subprocesses."""
  return tmp_path_factory.mktemp("jax_compile_cache")


def subprocess_env(cache_dir, devices: int | None = None) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PLATFORMS"] = "cpu"
  if devices is not None:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
  return env


@pytest.fixture(scope="module")
def baseline(synthetic_h36m_root, tmp_path_factory):
  """An uninterrupted tiny run: (config, workdir, TrainResult)."""
  workdir = tmp_path_factory.mktemp("baseline")
  config = tiny_config(synthetic_h36m_root)
  result = train_lib.train(config, workdir, print_fn=lambda s: None)
  return config, workdir, result


# -- units ------------------------------------------------------------------------

def test_mpjpe_loss_matches_numpy_and_zeroes_target_root():
  rng = np.random.default_rng(0)
  pred = rng.normal(size=(4, 1, 17, 3)).astype(np.float32)
  target = rng.normal(size=(4, 1, 17, 3)).astype(np.float32)
  zeroed = target.copy()
  zeroed[:, :, 0] = 0
  want = np.linalg.norm(pred - zeroed, axis=-1).mean()
  np.testing.assert_allclose(float(train_step.mpjpe_loss(pred, target)), want, rtol=1e-6)
  # Zero error somewhere: finite (zero) gradient, not NaN.
  grad = jax.grad(lambda p: train_step.mpjpe_loss(p, zeroed))(zeroed.copy())
  assert np.isfinite(np.asarray(grad)).all()


def test_learning_rate_is_staircase_per_epoch():
  t = config_lib.base_config().train
  sched = train_step.learning_rate_schedule(t, steps_per_epoch=10)
  np.testing.assert_allclose([float(sched(s)) for s in (0, 9, 10, 19, 20, 35)],
                             [1e-4, 1e-4, 0.99e-4, 0.99e-4, 0.99 ** 2 * 1e-4, 0.99 ** 3 * 1e-4],
                             rtol=1e-6)


def _torch_lr(t, step: int, steps_per_epoch: int) -> float:
  """The learning rate of global step `step` (0-based), written out independently of optax:
  upstream's ``lr *= lr_decay`` after every epoch, or a linear warm-up then a cosine."""
  if t.schedule == "exponential":
    return t.learning_rate * t.lr_decay ** (step // steps_per_epoch)
  total, warm = steps_per_epoch * t.epochs, t.warmup_steps
  if step < warm:
    return t.learning_rate * step / warm
  end = t.learning_rate * t.end_lr_ratio
  return end + (t.learning_rate - end) * (1 + np.cos(np.pi * (step - warm) / (total - warm))) / 2


@pytest.mark.parametrize("schedule", ["exponential", "warmup_cosine"])
def test_adamw_matches_torch_over_several_steps(schedule):
  """Ten steps of the project's optimizer = torch.optim.AdamW with the config's betas, eps and
  weight decay, its learning rate set per step by the schedule. Gradients change scale from
  step to step (and one entry is always zero), so both moments and their bias corrections
  matter; on step 1 alone they cancel."""
  torch = require("torch")
  t = config_lib.base_config().train
  t.learning_rate, t.lr_decay, t.epochs, t.schedule, t.warmup_steps = 1e-2, 0.5, 4, schedule, 3
  steps_per_epoch, steps = 3, 10
  tx = train_step.make_optimizer(t, steps_per_epoch=steps_per_epoch)
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "b": rng.normal(size=(3,)).astype(np.float32)}
  mine = {k: jax.numpy.asarray(v) for k, v in params.items()}
  theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
  opt = torch.optim.AdamW(list(theirs.values()), lr=t.learning_rate,
                          betas=(t.adam_b1, t.adam_b2), eps=t.adam_eps,
                          weight_decay=t.weight_decay)
  state = tx.init(mine)
  for step in range(steps):
    grads = {k: (rng.normal(size=v.shape) * 10.0 ** rng.uniform(-2, 1)).astype(np.float32)
             for k, v in params.items()}
    grads["w"][0, 0] = 0.0
    updates, state = tx.update(grads, state, mine)
    mine = optax.apply_updates(mine, updates)
    for k, p in theirs.items():
      p.grad = torch.from_numpy(grads[k])
    opt.param_groups[0]["lr"] = _torch_lr(t, step, steps_per_epoch)
    opt.step()
  moved = max(np.abs(theirs[k].detach().numpy() - params[k]).max() for k in params)
  assert moved > 1e-2  # the steps did move the parameters
  for k in params:
    np.testing.assert_allclose(np.asarray(mine[k]), theirs[k].detach().numpy(), rtol=0,
                               atol=1e-6, err_msg=k)


def test_half_deleted_old_steps_are_pruned_but_never_the_newest(tmp_path):
  """A kill during orbax's deletion of an old step leaves a partial folder; it goes, complete
  steps and anything newer than the newest complete step stay."""
  def make(name, complete):
    d = tmp_path / name
    (d / "meta").mkdir(parents=True)
    if complete:
      (d / "params").mkdir()
      (d / "_CHECKPOINT_METADATA").write_text("{}")
  for name, complete in [("2", False), ("3", True), ("4", False), ("5", True), ("6", False)]:
    make(name, complete)
  (tmp_path / "7.orbax-checkpoint-tmp-123").mkdir()
  assert workdir_lib.prune_partial_steps(tmp_path) == ["2", "4"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "5", "6",
                                                       "7.orbax-checkpoint-tmp-123"]


def test_bfloat16_compute_keeps_float32_parameters(synthetic_h36m_root):
  """With model.dtype='bfloat16' the step's parameters and optimizer state stay float32."""
  from poseformer_jax import model as model_lib, parallel
  config = tiny_config(synthetic_h36m_root, **{"model.dtype": "bfloat16"})
  mesh = parallel.make_mesh()
  model = model_lib.from_config(config.model)
  tx = train_step.make_optimizer(config.train, 10)
  init_key, dropout_key = train_step.rng_keys(0)
  state = train_step.init_state(model, tx, init_key, mesh, abstract=True)
  spec = train_step.step_spec(model, tx, mesh, dropout_key)
  batch = {"inputs": jax.ShapeDtypeStruct((8, 9, 17, 2), np.float32),
           "targets": jax.ShapeDtypeStruct((8, 1, 17, 3), np.float32)}
  # Traces the step, no compile (the jitted one carries compiler options, which
  # JAX takes only at the top level).
  new_state, metrics = jax.eval_shape(lambda s, b: train_step.train_step(s, b, spec), state, batch)
  assert metrics["loss"].dtype == np.float32
  for tree in (state.params, new_state.params, new_state.opt_state):
    floats = {x.dtype for x in jax.tree.leaves(tree) if np.issubdtype(x.dtype, np.floating)}
    assert floats == {np.dtype(np.float32)}
  # The forward really computes in bfloat16.
  jaxpr = jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x))(
      new_state.params, batch["inputs"])
  assert "bf16" in str(jaxpr)


@pytest.mark.slow
def test_gradient_accumulation_gives_the_same_loss_and_gradient(synthetic_h36m_root):
  """train.grad_accum_steps=4 computes the same loss and gradient as one pass (no drop path)."""
  from poseformer_jax import model as model_lib, parallel
  config = tiny_config(synthetic_h36m_root, **{"model.drop_path_rate": 0.0, "model.depth": 1})
  mesh = parallel.make_mesh()
  model = model_lib.from_config(config.model)
  tx = train_step.make_optimizer(config.train, 10)
  init_key, dropout_key = train_step.rng_keys(0)
  rng = np.random.default_rng(0)
  local = {"inputs": rng.normal(size=(32, 9, 17, 2)).astype(np.float32),
           "targets": rng.normal(size=(32, 1, 17, 3)).astype(np.float32)}
  out = []
  for accum in (1, 4):
    state = train_step.init_state(model, tx, init_key, mesh)
    step = train_step.make_train_step(model, tx, mesh, dropout_key, accum)
    _, metrics = step(state, parallel.global_batch(local, mesh))
    out.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  np.testing.assert_allclose(out[1], out[0], rtol=1e-5)


# -- training runs ----------------------------------------------------------------

def test_training_lowers_loss_and_writes_outputs(baseline):
  config, workdir, result = baseline
  assert result.status == "completed" and result.step == TOTAL_STEPS
  losses = np.asarray(result.losses)
  assert len(losses) == TOTAL_STEPS and np.isfinite(losses).all()
  assert losses[-6:].mean() < 0.8 * losses[:6].mean(), losses
  epochs = logging_lib.read_log(workdir, "epoch")
  assert [r["epoch"] for r in epochs] == [1, 2]
  assert all(r["val_p1"] > 0 and r["val_p2"] > 0 and r["lr"] > 0 for r in epochs)
  assert epochs[1]["lr"] == pytest.approx(0.9 * epochs[0]["lr"])
  # checkpoints/ keeps the latest 2 epoch checkpoints; best/ one; both load as models.
  assert sorted(int(p.name) for p in (Path(workdir) / "checkpoints").iterdir()
                if p.name.isdigit()) == [12, 24]
  model, params, stored = checkpoint.load_checkpoint(workdir)
  assert stored.model.to_dict() == config.model.to_dict()
  best_step = min(epochs, key=lambda r: r["val_p1"])["step"]
  assert (Path(workdir) / "best" / str(best_step)).is_dir()
  _, final_params, _ = checkpoint.load_checkpoint(Path(workdir) / "checkpoints")
  assert params_equal(final_params, result.state.params)


def test_tensorboard_scalars_are_the_run_s_numbers(baseline):
  """The event files hold the per-step loss every train.log_every_steps (4) steps and the
  epoch records' loss, learning rate, throughput and validation errors at each epoch's end."""
  ea = require("tensorboard.backend.event_processing.event_accumulator")
  config, workdir, result = baseline
  acc = ea.EventAccumulator(str(Path(workdir) / "tensorboard"), size_guidance={ea.SCALARS: 0})
  acc.Reload()
  got = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
  assert set(got) == {"train/step_loss_mm", "train/grad_norm", "train/loss_mm", "train/lr",
                      "train/samples_per_s", "val/p1_mm", "val/p2_mm"}
  losses = np.asarray(result.losses) * 1000.0  # per step, metres -> mm
  steps, values = zip(*got["train/step_loss_mm"])
  assert list(steps) == [4, 8, 12, 16, 20, 24]
  np.testing.assert_allclose(values, losses[np.array(steps) - 1], rtol=1e-6)
  assert all(v > 0 for _, v in got["train/grad_norm"]) and len(got["train/grad_norm"]) == 6
  epochs = logging_lib.read_log(workdir, "epoch")
  for tag, key in (("train/loss_mm", "train_loss_mm"), ("train/lr", "lr"),
                   ("train/samples_per_s", "samples_per_s"), ("val/p1_mm", "val_p1"),
                   ("val/p2_mm", "val_p2")):
    np.testing.assert_allclose(got[tag], [(r["step"], r[key]) for r in epochs], rtol=1e-6,
                               err_msg=tag)
  # The epoch loss is the mean of its steps' losses; the second epoch's rate is 0.9 x.
  np.testing.assert_allclose(got["train/loss_mm"][0][1], losses[:12].mean(), rtol=1e-5)
  assert got["train/lr"][1][1] == pytest.approx(0.9 * config.train.learning_rate)


def test_interrupted_run_resumes_bitwise(baseline, tmp_path):
  config, _, base = baseline
  workdir = tmp_path / "run"
  quiet = dict(print_fn=lambda s: None)
  # Stop mid-epoch 1, then mid-epoch 2 (after an epoch end with validation), then finish.
  r1 = train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 5}), workdir,
                       **quiet)
  assert r1.status == "stopped" and r1.step == 5
  _, meta = restored_params(workdir)
  assert (meta["epoch"], meta["step_in_epoch"]) == (0, 5)
  r2 = train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 17}), workdir,
                       **quiet)
  assert r2.status == "stopped" and r2.step == 17
  r3 = train_lib.train(tiny_config(config.data.root), workdir, **quiet)
  assert r3.status == "completed" and r3.step == TOTAL_STEPS
  # Bitwise: parameters, every step's loss, and the logged epoch records.
  assert params_equal(r3.state.params, base.state.params)
  assert r1.losses + r2.losses + r3.losses == base.losses
  strip = lambda recs: [{k: v for k, v in r.items() if not k.endswith(("_s", "per_s"))}
                        for r in recs]
  assert strip(logging_lib.read_log(workdir, "epoch")) == strip(
      logging_lib.read_log(base.workdir, "epoch"))
  assert r3.best_p1 == base.best_p1


def test_resume_refuses_other_architecture_or_batch(baseline, tmp_path):
  config, _, _ = baseline
  workdir = tmp_path / "run"
  train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 2}), workdir,
                  print_fn=lambda s: None)
  with pytest.raises(ConfigError, match="model differs.*depth"):
    train_lib.train(tiny_config(config.data.root, **{"model.depth": 3}), workdir,
                    print_fn=lambda s: None)
  with pytest.raises(ConfigError, match="batch_size"):
    train_lib.train(tiny_config(config.data.root, **{"train.batch_size": 32}), workdir,
                    print_fn=lambda s: None)


def test_automatic_microbatches_are_recorded_and_kept_on_resume(baseline, tmp_path,
                                                               monkeypatch):
  """train.grad_accum_steps=0 resolves once (`cpu_tuning`); a resumed run keeps that count
  (its drop-path draws depend on it) even where it would now resolve otherwise."""
  from poseformer_jax import cpu_tuning, flops
  config, _, _ = baseline
  workdir = tmp_path / "run"
  batch_work = 3 * flops.matmul_flops(config.model) / 1e9 * config.train.batch_size
  monkeypatch.setattr(cpu_tuning, "MICROBATCH_GFLOP", batch_work / 3)  # -> 4 parts
  lines = []
  train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 2}), workdir,
                  print_fn=lines.append)
  assert restored_params(workdir)[1]["grad_accum_steps"] == 4
  assert any("each step in 4 microbatches" in line for line in lines), lines
  monkeypatch.setattr(cpu_tuning, "MICROBATCH_GFLOP", batch_work * 2)  # -> 1 part now
  with pytest.raises(ConfigError, match="grad_accum_steps: checkpoint 4 vs now 1"):
    train_lib.train(tiny_config(config.data.root, **{"train.grad_accum_steps": 1}), workdir,
                    print_fn=lambda s: None)
  r = train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 3}), workdir,
                      print_fn=lambda s: None)
  assert r.step == 3 and restored_params(workdir)[1]["grad_accum_steps"] == 4


class _NaNAfter:
  """Wraps a pipeline; from global step `bad` on the inputs are NaN."""

  def __init__(self, inner, bad: int):
    self.inner, self.bad = inner, bad
    self.steps_per_epoch = inner.steps_per_epoch

  def epoch(self, epoch, start_step=0):
    for k, batch in enumerate(self.inner.epoch(epoch, start_step), start=start_step):
      if epoch * 12 + k >= self.bad:
        batch = {**batch, "inputs": np.full_like(batch["inputs"], np.nan)}
      yield batch


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(baseline, tmp_path):
  config, _, _ = baseline
  config = tiny_config(config.data.root, **{"train.checkpoint_every_steps": 2})
  data = train_lib.load_data(config)
  pipeline = _NaNAfter(train_lib.build_pipeline(config, data), bad=5)  # the 6th step
  workdir = tmp_path / "run"
  with pytest.raises(train_lib.TrainingError,
                     match=r"non-finite loss \(nan\) at step 6 \(epoch 1, step 6 of 12\)"):
    train_lib.train(config, workdir, data=data, pipeline=pipeline, print_fn=lambda s: None)
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [2, 4]
  params, meta = restored_params(workdir)
  assert meta["step"] == 4
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


# -- subprocesses -----------------------------------------------------------------

_LOSSES_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_train import tiny_config
from poseformer_jax import parallel, train_lib
config = tiny_config({root!r}, **{overrides!r})
parallel.maybe_initialize_distributed(config.train)  # process-wide set-up, as train.py's main
r = train_lib.train(config, {workdir!r}, print_fn=lambda s: None)
import jax
print("RESULT", json.dumps({{"devices": jax.device_count(), "processes": jax.process_count(),
                            "losses": r.losses}}))
"""

# The first epoch of the baseline, without validation (which does not change the losses).
FIRST_EPOCH = {"train.epochs": 1, "train.eval_every_epochs": 0, "train.tensorboard": False}


def _run_losses(root, workdir, cache, *, devices: int, fast_compile: bool = False,
                **overrides) -> list[dict]:
  """Runs `train` in a fresh process with `devices` CPU devices; returns its RESULT."""
  env = subprocess_env(cache, devices)
  if fast_compile:  # halves XLA:CPU compile time; results stay within float tolerance
    env["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
  code = _LOSSES_SCRIPT.format(tests=str(REPO / "tests"), root=str(root), workdir=str(workdir),
                               overrides={**FIRST_EPOCH, **overrides})
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600, cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
  return json.loads(line[len("RESULT "):])


def test_four_devices_give_the_same_losses_as_one(baseline, tmp_path, compile_cache):
  """Same global batch on 4 CPU devices: the loss curve of the (1-device) baseline."""
  config, _, base = baseline
  if jax.device_count() != 1:
    pytest.skip("this pytest process has several devices; the baseline must be 1-device")
  res = _run_losses(config.data.root, tmp_path / "four", compile_cache, devices=4,
                    fast_compile=True)
  assert res["devices"] == 4
  # Same drop-path masks (partitionable threefry); only float summation order differs.
  np.testing.assert_allclose(res["losses"], base.losses[:12], rtol=2e-5)


@pytest.mark.slow
def test_sigterm_saves_and_exits_then_resume_matches(baseline, tmp_path, compile_cache):
  """train.py resumes a stopped run in a new process, gets SIGTERM, saves, exits 0; resuming
  that ends bitwise where the uninterrupted run ended."""
  config, _, base = baseline
  workdir = tmp_path / "run"
  train_lib.train(tiny_config(config.data.root, **{"train.stop_after_steps": 2}), workdir,
                  print_fn=lambda s: None)
  cmd = [sys.executable, "train.py", "--config=configs/h36m.py", f"--workdir={workdir}",
         *cli_overrides(config.data.root, **{"train.checkpoint_every_steps": 3,
                                             "train.eval_every_epochs": 0})]
  proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(compile_cache),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    first = workdir / "checkpoints" / "3"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
      time.sleep(0.01)
    assert first.exists(), proc.communicate()[1][-3000:] if proc.poll() is not None else "slow"
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err[-3000:]
  assert time.time() - sent < 60
  assert "Resuming from" in out and "Pre-empted" in out, out
  _, meta = restored_params(workdir)
  assert 3 <= meta["step"] < TOTAL_STEPS, "the run finished before SIGTERM arrived"
  r = train_lib.train(tiny_config(config.data.root), workdir, print_fn=lambda s: None)
  assert r.status == "completed" and params_equal(r.state.params, base.state.params)


def _cli(args, cache, timeout=300):
  return subprocess.run([sys.executable, "train.py", *args], cwd=REPO,
                        env=subprocess_env(cache), capture_output=True, text=True,
                        timeout=timeout)


@pytest.mark.parametrize("case", ["unwritable_workdir", "unknown_variant", "unknown_field"])
def test_cli_errors_are_one_line(case, tmp_path, compile_cache, synthetic_h36m_root):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  args = {
      "unwritable_workdir": ["--config=configs/h36m.py", f"--workdir={blocker / 'run'}",
                             *cli_overrides(synthetic_h36m_root)],
      "unknown_variant": ["--config=configs/h36m.py:99_9_9", f"--workdir={tmp_path / 'run'}"],
      "unknown_field": ["--config=configs/h36m.py", "--config.train.nope=1",
                        f"--workdir={tmp_path / 'run'}"],
  }[case]
  out = _cli(args, compile_cache)
  assert out.returncode == 2
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert {"unwritable_workdir": "not writable", "unknown_variant": "unknown variant",
          "unknown_field": "nope"}[case] in lines[0]
  assert "Traceback" not in out.stderr


# -- the fast recipe and warm starts ----------------------------------------------------------

def test_fast_recipe_config_and_warmup_cosine_schedule():
  config = config_lib.load_config_file(str(REPO / "configs" / "h36m.py") + ":81_1_3,recipe=fast")
  assert (config.model.num_frames, config.model.kept_frames, config.model.kept_coeffs) == (81, 1, 3)
  t = config.train
  assert t.schedule == "warmup_cosine" and t.grad_clip_norm == 1.0 and config.data.noise_std > 0
  sched = train_step.learning_rate_schedule(t, steps_per_epoch=t.max_steps_per_epoch)
  total = t.epochs * t.max_steps_per_epoch
  lrs = np.array([float(sched(s)) for s in range(0, total + 1, 50)])
  np.testing.assert_allclose(float(sched(0)), 0.0, atol=1e-12)
  np.testing.assert_allclose(float(sched(t.warmup_steps)), t.learning_rate, rtol=1e-6)
  np.testing.assert_allclose(float(sched(total)), t.learning_rate * t.end_lr_ratio, rtol=1e-4)
  peak = int(np.argmax(lrs))
  assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) <= 0)
  with pytest.raises(ConfigError, match="unknown recipe"):
    config_lib.load_config_file(str(REPO / "configs" / "h36m.py") + ":81_1_3,recipe=slow")
  with pytest.raises(ConfigError, match="unknown option"):
    config_lib.load_config_file(str(REPO / "configs" / "h36m.py") + ":81_1_3,lr=3")


def test_gradient_clipping_bounds_the_update():
  t = config_lib.base_config().train
  t.grad_clip_norm, t.weight_decay = 1.0, 0.0
  params = {"w": np.zeros(4, np.float32)}
  huge = {"w": np.full(4, 1e6, np.float32)}
  clipped = train_step.make_optimizer(t, 10)
  t.grad_clip_norm = 0.0
  plain = train_step.make_optimizer(t, 10)
  # Adam normalises the first step either way; the second moment shows the clipping.
  s_c = clipped.update(huge, clipped.init(params), params)[1]
  s_p = plain.update(huge, plain.init(params), params)[1]
  def moments(state):  # Adam's mu and nu of "w" after one update
    return max(float(np.abs(np.asarray(x)).max()) for x in jax.tree.leaves(state)
               if np.asarray(x).shape == (4,))
  assert moments(s_c) < 1.0 < moments(s_p)


def test_input_noise_is_per_sample_and_bounded():
  x = jax.numpy.zeros((512, 9, 17, 2))
  noisy = np.asarray(train_step.add_input_noise(x, jax.random.PRNGKey(0), 0.01)[0])
  std = noisy.reshape(512, -1).std(axis=1)
  assert 0 < std.min() < 0.002 and 0.008 < std.max() < 0.0115  # uniform in [0, 0.01]
  assert np.array_equal(np.asarray(train_step.add_input_noise(x, jax.random.PRNGKey(0), 0.0)[0]),
                        np.asarray(x))


def test_init_from_starts_with_those_parameters_and_a_fresh_optimizer(baseline, tmp_path):
  config, workdir, _ = baseline
  source, _ = restored_params(workdir)
  fresh = tiny_config(config.data.root, **{"train.stop_after_steps": 1,
                                           "train.init_from": str(workdir / "checkpoints")})
  result = train_lib.train(fresh, tmp_path / "ft", print_fn=lambda s: None)
  assert result.step == 1
  # One step of a fresh AdamW moves every parameter by at most ~lr from the source.
  lr = float(fresh.train.learning_rate)
  for a, b in zip(jax.tree.leaves(source), jax.tree.leaves(result.state.params)):
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) < 2 * lr
  other = tiny_config(config.data.root, **{"train.init_from": str(workdir / "checkpoints"),
                                           "model.depth": 1})
  with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
    train_lib.train(other, tmp_path / "bad", print_fn=lambda s: None)
