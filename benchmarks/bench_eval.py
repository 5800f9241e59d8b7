"""Full evaluation pass (windows + flip + P1/P2/P3/MPJVE): the project's evaluation vs upstream's loop.

  python benchmarks/bench_eval.py [--quick] [--json out.json] [--variant 27_3_3]

Data: a synthetic Human3.6M look-alike (test subjects S9, S11, 4 cameras;
`poseformer_jax.data.synthetic`) written to a temporary folder. Weights: the
random-weight PyTorch reference converted to Flax (both sides identical).

* JAX: `evaluation.make_predictor` + `evaluation.evaluate` (device-side window
  gather by index, spatial branch once per frame, flip in the same jitted
  forward, fixed batch, async dispatch, jitted metrics), exactly what
  `eval.py` runs.
* upstream: the pattern of PoseFormerV2's ``run_poseformerv2.py`` /
  ``eval_data_prepare``, reimplemented here in PyTorch: per sequence, pad the
  2D sequence at both ends (edge), build every window in a Python loop, run
  the whole sequence as one batch, again for the flipped copy, average, then
  P1 (torch), P2 (numpy Procrustes per frame, as upstream's ``p_mpjpe``),
  P3 and MPJVE (numpy).

Each runs in a process of its own (`common.Remote`; JAX with `eval.py`'s host memory
policy), as its users run it; they are timed alternately, each turn after one
untimed pass of the same side (`common.alternate`'s ``settle``). "Outside forward"
is the pass's time minus the forward calls' time: for JAX the same number of
forward calls at the pass's batch shape, timed alone in a third process; for
upstream the share of its passes spent in its forward calls (median of 3 passes).
That is window building, flips, transfers, metrics and Python overhead.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import common
import jax
import numpy as np
from absl import flags

from poseformer_jax import config_lib, evaluation
from poseformer_jax.data import dataset, synthetic


def load_synthetic(tmp: Path, actions: int, frames: int):
  synthetic.write_h36m(tmp, subjects="S9,S11", actions_per_subject=actions, frames=frames)
  cfg = config_lib.base_config().data
  cfg.root, cfg.subjects_test = str(tmp), "S9,S11"
  return dataset.load_sequences(cfg, "test")


def upstream_eval(ref, sequences, info, num_frames, torch, timing=None):
  """Upstream's evaluation loop in PyTorch (see module docstring). Returns mean P1 (mm)."""
  pad = (num_frames - 1) // 2
  kl, kr = list(info.kps_left), list(info.kps_right)
  jl, jr = list(info.joints_left), list(info.joints_right)
  p1s, weights = [], []
  for s in sequences:
    seq2d = np.pad(s.keypoints_2d, ((pad, pad), (0, 0), (0, 0)), "edge")
    flipped = seq2d.copy()
    flipped[..., 0] *= -1
    flipped[:, kl + kr] = flipped[:, kr + kl]
    batch = np.empty((len(s), num_frames) + seq2d.shape[1:], np.float32)
    batch_flip = np.empty_like(batch)
    for i in range(len(s)):  # eval_data_prepare: one window per output frame
      batch[i] = seq2d[i:i + num_frames]
      batch_flip[i] = flipped[i:i + num_frames]
    with torch.inference_mode():
      t0 = time.perf_counter()
      pred = ref(torch.from_numpy(batch))
      pred_flip = ref(torch.from_numpy(batch_flip))
      if timing is not None:
        timing.append(time.perf_counter() - t0)
      pred_flip[..., 0] *= -1
      pred_flip[:, :, jl + jr] = pred_flip[:, :, jr + jl]
      pred = ((pred + pred_flip) / 2)[:, 0]
      target = torch.from_numpy(s.positions_3d.copy())
      target[:, info.root_joint] = 0
      p1 = torch.mean(torch.norm(pred - target, dim=-1), dim=-1)
    pred_np, target_np = pred.numpy(), target.numpy()
    p2 = _p_mpjpe(pred_np, target_np)
    scale = (np.sum(target_np * pred_np, axis=(1, 2), keepdims=True)
             / np.sum(pred_np ** 2, axis=(1, 2), keepdims=True))
    p3 = np.mean(np.linalg.norm(scale * pred_np - target_np, axis=-1), axis=-1)
    vel = np.mean(np.linalg.norm(np.diff(pred_np, axis=0) - np.diff(target_np, axis=0), axis=-1))
    del p2, p3, vel  # computed for the cost; only P1 is compared
    p1s.append(float(p1.mean()) * 1000)
    weights.append(len(s))
  return float(np.average(p1s, weights=weights))


def _p_mpjpe(pred, target):
  """Per-frame Procrustes-aligned MPJPE, as upstream's numpy `p_mpjpe`."""
  mu_x, mu_y = target.mean(1, keepdims=True), pred.mean(1, keepdims=True)
  x0, y0 = target - mu_x, pred - mu_y
  nx = np.sqrt(np.sum(x0 ** 2, axis=(1, 2), keepdims=True))
  ny = np.sqrt(np.sum(y0 ** 2, axis=(1, 2), keepdims=True))
  x0, y0 = x0 / nx, y0 / ny
  h = np.matmul(x0.transpose(0, 2, 1), y0)
  u, s, vt = np.linalg.svd(h)
  v = vt.transpose(0, 2, 1)
  r = np.matmul(v, u.transpose(0, 2, 1))
  sign = np.sign(np.expand_dims(np.linalg.det(r), axis=1))
  v[:, :, -1] *= sign
  s[:, -1] *= sign.flatten()
  r = np.matmul(v, u.transpose(0, 2, 1))
  tr = np.expand_dims(np.sum(s, axis=1, keepdims=True), axis=2)
  a = tr * nx / ny
  t = mu_x - a * np.matmul(mu_y, r)
  aligned = a * np.matmul(pred, r) + t
  return np.mean(np.linalg.norm(aligned - target, axis=-1), axis=-1)


def _setup(variant, actions, frames, batch_size):
  """Model, weights, the synthetic test sequences and the project's predictor."""
  _, model, params = common.reference_pair(variant, torch_model=False)
  with tempfile.TemporaryDirectory() as tmp:
    sequences, info = load_synthetic(Path(tmp), actions, frames)
  predictor = evaluation.make_predictor(model, params, info, batch_size=batch_size, flip=True)
  return model, sequences, info, predictor


def build_jax_pass(variant, actions, frames, batch_size):
  """The JAX side (its own process): `eval.py`'s pass. Returns (call, {'p1', 'frames', ...})."""
  _, sequences, info, predictor = _setup(variant, actions, frames, batch_size)

  def jax_pass():
    return evaluation.evaluate(predictor, sequences, info, progress=False)["average"]["p1"]

  return jax_pass, {"p1": jax_pass(), "frames": sum(len(s) for s in sequences),
                    "sequences": len(sequences)}


def build_jax_forwards(variant, actions, frames, batch_size):
  """The pass's floor (its own process): the same number of forward calls at the same
  shape through the pass's own path (shared frames for f > 1), nothing else."""
  model, sequences, _, predictor = _setup(variant, actions, frames, batch_size)
  total = sum(len(s) for s in sequences)
  pass_batch = predictor.batch_for(total)  # the batch the pass picks for this many windows
  n_calls = -(-total // pass_batch)
  frames_2d = np.concatenate([s.keypoints_2d for s in sequences])
  frames_2d = jax.device_put(np.pad(frames_2d, ((0, max(0, 2 * pass_batch - total)), (0, 0), (0, 0))))
  offsets = np.arange(model.num_frames) - predictor.pad
  idx = np.clip(np.arange(pass_batch)[:, None] + offsets, 0, total - 1).astype(np.int32)

  def jax_forwards():
    for _ in range(n_calls):
      predictor._forward_batch(frames_2d, idx).block_until_ready()

  return jax_forwards, {}


def build_upstream(variant, actions, frames):
  """The upstream loop (its own process, PyTorch). Returns (call, {'p1', 'forward_share'}):
  the share of a pass spent in the forward calls, median of 3 passes."""
  import torch

  from torch_checkpoints import random_reference  # needs torch

  m = common.model_config(variant).model
  ref = random_reference(m.num_frames, m.kept_frames, m.kept_coeffs, seed=0)  # as reference_pair
  with tempfile.TemporaryDirectory() as tmp:
    sequences, info = load_synthetic(Path(tmp), actions, frames)
  forward: list[float] = []
  shares = []

  def torch_pass():
    forward.clear()
    t0 = time.perf_counter()
    p1 = upstream_eval(ref, sequences, info, m.num_frames, torch, forward)
    shares.append(sum(forward) / (time.perf_counter() - t0))
    return p1

  p1 = [torch_pass() for _ in range(3)][0]
  return torch_pass, {"p1": p1, "forward_share": float(np.median(shares))}


def run(variant, actions, frames, batch_size, repeats, cache=True):
  with common.jax_remote(build_jax_pass, variant, actions, frames, batch_size, cache=cache) as jx, \
       common.jax_remote(build_jax_forwards, variant, actions, frames, batch_size,
                         cache=cache) as jf, \
       common.torch_remote(build_upstream, variant, actions, frames) as up:
    t = common.alternate({"jax": jx, "jax_forwards": jf, "upstream": up},
                         repeats=repeats, target_s=0.0, warmup=0, settle=1)
  total = jx.info["frames"]
  jax_fwd = t["jax_forwards"]["median"]
  up_share = up.info["forward_share"]
  up_fwd = up_share * t["upstream"]["median"]
  row = {"variant": variant, "sequences": jx.info["sequences"], "frames": total,
         "batch_size": batch_size,
         "jax_s": t["jax"]["median"], "upstream_s": t["upstream"]["median"],
         "jax_fps": total / t["jax"]["median"], "upstream_fps": total / t["upstream"]["median"],
         "jax_forward_s": jax_fwd, "upstream_forward_s": up_fwd,
         "p1_jax_mm": jx.info["p1"], "p1_upstream_mm": up.info["p1"]}
  row["ratio"] = row["jax_fps"] / row["upstream_fps"]
  row["jax_outside_forward"] = max(0.0, 1 - jax_fwd / row["jax_s"])
  row["upstream_outside_forward"] = 1 - up_share
  return row


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_string("variant", "27_3_3", "Published variant F_f_n.", flag_values=fv)
  flags.DEFINE_integer("actions", 1, "Actions per test subject.", flag_values=fv)
  flags.DEFINE_integer("frames", 300, "Frames per synthetic action.", flag_values=fv)
  flags.DEFINE_integer("batch-size", 1024, "Windows per JAX forward call.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  frames, batch_size = fv.frames, fv["batch-size"].value
  repeats = fv.repeats or 3
  if fv.quick:
    frames, repeats = min(frames, 120), fv.repeats or 2
    batch_size = min(batch_size, 256)
  row = run(fv.variant, fv.actions, frames, batch_size, repeats, cache=not fv["no-cache"].value)
  return common.report(
      ["variant", "frames", "JAX f/s", "upstream f/s", "JAX/upstream", "JAX s", "upstream s",
       "JAX outside fwd", "upstream outside fwd", "P1 JAX mm", "P1 upstream mm"],
      [[row["variant"], row["frames"], row["jax_fps"], row["upstream_fps"], f"{row['ratio']:.2f}x",
        row["jax_s"], row["upstream_s"], f"{100 * row['jax_outside_forward']:.1f}%",
        f"{100 * row['upstream_outside_forward']:.1f}%", f"{row['p1_jax_mm']:.3f}",
        f"{row['p1_upstream_mm']:.3f}"]],
      title=f"Evaluation pass with flip, {row['sequences']} synthetic sequences, "
            f"JAX batch {row['batch_size']} windows, {common.CORES} threads each",
      json_path=fv.json, payload={"benchmark": "eval", "repeats": repeats, "results": [row]})


if __name__ == "__main__":
  sys.exit(main())
