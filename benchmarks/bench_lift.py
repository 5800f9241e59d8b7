"""Lifting throughput on this machine: `poseformer_jax.lifter.Lifter` vs one network call per frame.

    python benchmarks/bench_lift.py [--variant 243_27_27] [--keypoints examples/skater_mediapipe33.npz]

Model: the given published variant with random weights (throughput does not
depend on the weights). Clip: the skater MediaPipe detections (185 frames),
mapped to H36M-17 and gap-filled, as the CLI does.

* batched: `lift()` over the whole clip (sliding windows, flip averaging,
  batched jitted forward passes through `inference.Predictor`).
* per frame: what the upstream demo does: for every frame, cut its
  edge-padded window, mirror it, and call the network twice with batch 1
  (plain and mirrored), then un-mirror and average. The per-frame call is
  jitted here too, so the comparison isolates batching, not JAX vs eager
  PyTorch.

JIT compilation is excluded from both: each path is run once to warm up
before timing. Each timing is the best of `--repeats` runs (this machine
may be shared; the best run is the least disturbed one).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import common
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from poseformer_jax import cli, config_lib, gaps, lift
from poseformer_jax import model as model_lib
from poseformer_jax.data import cameras, skeleton
from poseformer_jax.lifter import Lifter
from poseformer_jax.video import formats


def random_checkpoint(variant: str):
  """(model, params, config) of a published variant, random weights drawn in numpy."""
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  model = model_lib.from_config(config.model)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, config.model.num_frames, 17, 2)))["params"]
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name:
      return jnp.ones(leaf.shape, jnp.float32)
    if "bias" in name:
      return jnp.zeros(leaf.shape, jnp.float32)
    return jnp.asarray(rng.normal(0, 0.02, leaf.shape), jnp.float32)

  return model, jax.tree_util.tree_map_with_path(draw, shapes), config


def per_frame_lifter(model, params):
  """Upstream-demo style: two batch-1 network calls per frame."""
  perm = skeleton.flip_permutation(17, skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)
  apply = jax.jit(lambda x: model.apply({"params": params}, x, deterministic=True))
  pad = (model.num_frames - 1) // 2

  def run(xn: np.ndarray) -> np.ndarray:
    t = len(xn)
    out = np.empty((t, 17, 3), np.float32)
    for i in range(t):
      window = xn[np.clip(np.arange(i - pad, i + pad + 1), 0, t - 1)][None]
      mirrored = window[:, :, perm] * np.array([-1.0, 1.0], np.float32)
      y = np.asarray(apply(window))[0, 0]
      ym = np.asarray(apply(mirrored))[0, 0][perm] * np.array([-1.0, 1.0, 1.0], np.float32)
      out[i] = (y + ym) / 2
      out[i, 0] = 0
    return out

  return run


def main(argv=None) -> int:
  fv = flags.FlagValues()
  flags.DEFINE_string("variant", "243_27_27", "Published variant F_f_n.", flag_values=fv)
  flags.DEFINE_string("keypoints", str(common.REPO / "examples" / "skater_mediapipe33.npz"),
                      "Keypoint file of the clip.", flag_values=fv)
  flags.DEFINE_string("format", "mediapipe33", "Keypoint format of the file.", flag_values=fv)
  flags.DEFINE_integer("batch-size", 1024, "lift()'s batch size (capped at the clip length "
                       "rounded up to 16).", flag_values=fv)
  flags.DEFINE_integer("repeats", 3, "Timed runs (the best is reported).", flag_values=fv)
  status = cli.parse_command_flags(fv, argv, __doc__)
  if status is not None:
    return status
  batch_size = fv["batch-size"].value

  kps, size, _ = formats.load_keypoints(fv.keypoints, fv.format)
  kps, _ = gaps.fill_gaps(kps)
  t = len(kps)
  ckpt = random_checkpoint(fv.variant)
  model, params, _ = ckpt
  print(f"model {fv.variant} (F={model.num_frames}), random weights; clip {Path(fv.keypoints).name}: "
        f"{t} frames; flip averaging on; jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")

  start = time.perf_counter()
  lifter = Lifter(ckpt, batch_size=batch_size)  # owns the compiled forward: reused below
  batched = lift(kps, size, checkpoint=lifter)
  print(f"batched lift(): first call (includes JIT compilation) {time.perf_counter() - start:.1f} s")
  secs_b = common.best_of(lambda: lift(kps, size, checkpoint=lifter), fv.repeats)
  print(f"batched lift(): {secs_b:.2f} s for {t} frames = {t / secs_b:.1f} frames/s "
        f"(best of {fv.repeats}, warm)")

  xn = cameras.normalize_screen(kps, *size).astype(np.float32)
  one = per_frame_lifter(model, params)
  one(xn[:1])  # warm-up: compiles the batch-1 forward
  secs_f = common.best_of(lambda: one(xn), max(1, fv.repeats - 1))
  print(f"per frame (2 batch-1 calls per frame, as the upstream demo): {secs_f:.2f} s = "
        f"{t / secs_f:.1f} frames/s (best of {max(1, fv.repeats - 1)}, warm)")
  print(f"speed-up of batched lifting: {secs_f / secs_b:.1f}x")
  diff = np.abs(one(xn) - batched).max()
  print(f"max |per-frame - batched| = {diff:.2e} m (same windows, same result)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
