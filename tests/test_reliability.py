"""Crash safety of `train.py`: SIGKILL at random points and mid-save, SIGTERM, multi-process.

Every run is the real command line in a subprocess, on the suite's shared synthetic
Human3.6M with a tiny model (F=9, width 8, depth 1) and tiny epochs. The
subprocesses share a persistent XLA compilation cache.

* kill/resume: one uninterrupted run is the reference; another run on a new
  workdir is SIGKILLed repeatedly (once as soon as orbax's temporary
  ``*.orbax-checkpoint-tmp*`` directory of a save appears, then after seeded
  random delays) and re-started with the same command until it exits 0. Its
  final parameters must equal the reference's bitwise (CPU, same devices:
  the same XLA programs on the same inputs are deterministic), and the last
  record of every epoch in log.jsonl must equal the reference's.
* SIGTERM: exit status 0 within 60 s, a checkpoint of the step named in the
  "Pre-empted at step N" line, and resuming ends bitwise on the reference.
* multi-process: 2 processes x 2 CPU devices (localhost coordinator, gloo)
  against 1 process x 4 devices, same global batch and seed: equal per-step
  losses (epochs of one step, so log.jsonl's epoch loss is the step loss) and every
  parameter within 1e-5 (measured: 1.2e-7 on a 2-core AMD EPYC, 2026-12-04).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from poseformer_jax import checkpoint, logging_lib

REPO = Path(__file__).resolve().parent.parent

TINY = {
    "model.num_frames": 9, "model.kept_frames": 3, "model.kept_coeffs": 3,
    "model.embed_dim_ratio": 8, "model.depth": 1, "model.num_heads": 2,
    "data.keypoints": "gt", "data.subjects_train": "S1,S5", "data.subjects_test": "S9",
    "data.backend": "numpy",
    "train.batch_size": 32, "train.epochs": 3, "train.max_steps_per_epoch": 3,
    "train.checkpoint_every_steps": 1, "train.keep_checkpoints": 3,
    "train.learning_rate": 1e-3, "train.eval_every_epochs": 0, "train.final_eval": False,
    "train.progress_bar": False, "train.tensorboard": False, "train.log_every_steps": 1,
}
TOTAL_STEPS = 9


def command(root, workdir, **overrides) -> list[str]:
  items = {**TINY, "data.root": str(root), **overrides}
  return [sys.executable, "train.py", "--config=configs/h36m.py", f"--workdir={workdir}",
          *[f"--config.{k}={v}" for k, v in items.items()]]


def env_for(cache, devices: int = 1) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def run(cmd, cache, timeout=300, devices=1) -> subprocess.CompletedProcess:
  out = subprocess.run(cmd, cwd=REPO, env=env_for(cache, devices), capture_output=True,
                       text=True, timeout=timeout)
  assert out.returncode == 0, out.stderr[-3000:]
  return out


def final_params(workdir):
  """Parameters of the latest step in WORKDIR/checkpoints (not best/), and that step."""
  _, params, _ = checkpoint.load_checkpoint(Path(workdir) / "checkpoints")
  return params, checkpoint._steps(Path(workdir) / "checkpoints")[-1]


def assert_params_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def epoch_records(workdir) -> dict[int, dict]:
  """The last log.jsonl record of each epoch, without timings.

  After a SIGKILL between writing an epoch's record and its checkpoint, the
  resumed run repeats that epoch's last step and writes the record again; the
  last one is the valid one.
  """
  out = {}
  for r in logging_lib.read_log(workdir, "epoch"):
    out[r["epoch"]] = {k: v for k, v in r.items() if not k.endswith(("_s", "per_s"))}
  return out


def tmp_dirs(ckpt_dir: Path) -> list[str]:
  return [p.name for p in ckpt_dir.iterdir() if "orbax-checkpoint-tmp" in p.name] \
      if ckpt_dir.is_dir() else []


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("xla_cache")


@pytest.fixture(scope="module")
def reference(synthetic_h36m_root, cache, tmp_path_factory):
  """An uninterrupted run: (workdir, final params)."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  run(command(synthetic_h36m_root, workdir), cache)
  params, step = final_params(workdir)
  assert step == TOTAL_STEPS
  return workdir, params


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_is_bitwise(reference, synthetic_h36m_root, cache, tmp_path):
  ref_dir, ref_params = reference
  workdir = tmp_path / "run"
  ckpt_dir = workdir / "checkpoints"
  cmd = command(synthetic_h36m_root, workdir)
  rng = random.Random(20240607)
  kills, mid_save, attempts = [], False, 0
  while True:
    attempts += 1
    assert attempts <= 12, f"did not finish after {attempts - 1} kills: {kills}"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env_for(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
      if attempts <= 6:
        # The first attempt (and any later one until it happens): kill as soon as a save is
        # in progress. The others: kill after a seeded random delay once training started.
        if not mid_save:
          deadline = time.time() + 120
          while proc.poll() is None and time.time() < deadline and not tmp_dirs(ckpt_dir):
            time.sleep(0.0005)
          if proc.poll() is None and tmp_dirs(ckpt_dir):
            proc.send_signal(signal.SIGKILL)
            mid_save = True
            kills.append(f"mid-save {tmp_dirs(ckpt_dir)}")
        else:
          before = checkpoint._steps(ckpt_dir) if ckpt_dir.is_dir() else []
          deadline = time.time() + 120
          while (proc.poll() is None and time.time() < deadline
                 and (checkpoint._steps(ckpt_dir) if ckpt_dir.is_dir() else []) == before):
            time.sleep(0.005)
          delay = rng.uniform(0.0, 1.5)
          time.sleep(delay)
          if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(f"after {delay:.2f}s")
      out, err = proc.communicate(timeout=300)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
    # No temporary directory is ever listed as a step, by us or by orbax.
    if ckpt_dir.is_dir():
      steps = checkpoint._steps(ckpt_dir)
      mngr = checkpoint.open_manager(ckpt_dir, read_only=True,
                                     item_names=("params", "opt_state", "config", "meta"))
      assert sorted(mngr.all_steps()) == steps, (mngr.all_steps(), steps, tmp_dirs(ckpt_dir))
      mngr.close()
    if proc.returncode == 0:
      assert "Training complete" in out, out
      break
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
  assert mid_save, "never caught a save in progress"
  assert len(kills) >= 2, kills  # a mid-save kill plus at least one at a random point
  params, step = final_params(workdir)
  assert step == TOTAL_STEPS
  assert_params_equal(params, ref_params)
  assert epoch_records(workdir) == epoch_records(ref_dir)


@pytest.mark.slow
def test_planted_partial_checkpoint_is_ignored(reference, synthetic_h36m_root, cache, tmp_path):
  """A half-written newer step (orbax temporary name, or a step folder without params) is
  neither listed nor restored: the run resumes from the last complete step."""
  ref_dir, ref_params = reference
  workdir = tmp_path / "run"
  run(command(synthetic_h36m_root, workdir, **{"train.stop_after_steps": 4}), cache)
  ckpt_dir = workdir / "checkpoints"
  assert checkpoint._steps(ckpt_dir)[-1] == 4
  # A copy of step 4 renamed as an interrupted save of step 7, with a damaged param file.
  import shutil
  fake = ckpt_dir / "7.orbax-checkpoint-tmp-1717171717171717"
  shutil.copytree(ckpt_dir / "4", fake)
  for f in (fake / "params").rglob("*"):
    if f.is_file():
      f.write_bytes(b"\0" * 7)
  assert checkpoint._steps(ckpt_dir)[-1] == 4
  _, params, _ = checkpoint.load_checkpoint(ckpt_dir)   # loads step 4, not the fake
  out = run(command(synthetic_h36m_root, workdir), cache)
  assert "Resuming from" in out.stdout and f"{ckpt_dir / '4'}" in out.stdout, out.stdout
  params, step = final_params(workdir)
  assert step == TOTAL_STEPS
  assert_params_equal(params, ref_params)


@pytest.mark.slow
def test_sigterm_exits_cleanly_with_a_checkpoint(reference, synthetic_h36m_root, cache, tmp_path):
  ref_dir, ref_params = reference
  workdir = tmp_path / "run"
  ckpt_dir = workdir / "checkpoints"
  # Epochs of 3 steps but many of them, so SIGTERM lands mid-run whatever the machine's speed.
  cmd = command(synthetic_h36m_root, workdir)
  proc = subprocess.Popen(cmd, cwd=REPO, env=env_for(cache), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (
        ckpt_dir.is_dir() and checkpoint._steps(ckpt_dir)):
      time.sleep(0.002)
    assert proc.poll() is None, "finished before SIGTERM could be sent"
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    out, err = proc.communicate(timeout=120)
    elapsed = time.time() - sent
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err[-3000:]
  assert elapsed < 60, elapsed
  lines = [l for l in out.splitlines() if l.startswith("Pre-empted")]
  assert lines, out
  step = int(lines[0].split("step ")[1].split()[0])
  assert checkpoint._steps(ckpt_dir)[-1] == step < TOTAL_STEPS
  assert not tmp_dirs(ckpt_dir)
  out = run(cmd, cache).stdout
  assert f"Resuming from {ckpt_dir / str(step)}: step {step}" in out, out
  params, final = final_params(workdir)
  assert final == TOTAL_STEPS
  assert_params_equal(params, ref_params)


@pytest.mark.slow
def test_two_processes_equal_one_process_on_four_devices(synthetic_h36m_root, cache, tmp_path):
  """jax.distributed on localhost (gloo CPU collectives), 2 x 2 devices vs 1 x 4 devices,
  through `train.py`: same per-step losses, same parameters in the checkpoint both processes
  wrote together (1 x 4 devices = 1 device: `test_train.py`'s four-device test)."""
  # adam_eps 1e-3 (not 1e-8): with a tiny eps, Adam turns a near-zero gradient entry whose
  # last bits (and so sign) depend on the order of the cross-device/-process sums into a step
  # of up to lr in either direction (with 1e-8: 115 parameters apart by more than 1e-5, up to
  # 1.1e-4). With eps 1e-3 a gradient rounding difference dg moves a parameter by at most
  # lr * dg / eps, and the two runs agree to float32 rounding.
  tiny_epochs = {"train.epochs": 4, "train.max_steps_per_epoch": 1, "train.lr_decay": 0.9,
                 "train.checkpoint_every_steps": 0, "train.batch_size": 32,
                 "train.adam_eps": 1e-3}
  single = tmp_path / "single"
  run(command(synthetic_h36m_root, single, **tiny_epochs), cache, devices=4)
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  multi = tmp_path / "multi"
  procs = []
  for pid in range(2):
    cmd = command(synthetic_h36m_root, multi, **tiny_epochs,
                  **{"train.coordinator_address": f"localhost:{port}",
                     "train.num_processes": 2, "train.process_id": pid})
    env = env_for(cache, devices=2)
    env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  try:
    outs = [p.communicate(timeout=400) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert "4 device(s) / 2 process(es)" in outs[0][0], outs[0][0]
  a = [epoch_records(single)[e]["train_loss_mm"] for e in (1, 2, 3, 4)]
  b = [epoch_records(multi)[e]["train_loss_mm"] for e in (1, 2, 3, 4)]
  # Same programs on the same global batch; only the order of the cross-device/-process
  # float32 sums may differ.
  np.testing.assert_allclose(b, a, rtol=1e-5)
  pa, sa = final_params(single)
  pb, sb = final_params(multi)
  assert sa == sb == 4
  x = np.concatenate([np.ravel(v) for v in jax.tree.leaves(pa)])
  y = np.concatenate([np.ravel(v) for v in jax.tree.leaves(pb)])
  _, p2, _ = checkpoint.load_checkpoint(single / "checkpoints", step=2)
  x2 = np.concatenate([np.ravel(v) for v in jax.tree.leaves(p2)])
  print(f"max |2 processes - 1 process| = {np.abs(y - x).max():.3g}; steps 3-4 moved the "
        f"parameters by up to {np.abs(x - x2).max():.3g}")
  assert np.abs(x - x2).max() > 1e-3  # the last steps did move the parameters
  # Every parameter agrees to float32 rounding: one moved by 1e-4 fails.
  np.testing.assert_allclose(y, x, rtol=0, atol=1e-5)
