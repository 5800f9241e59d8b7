"""Training throughput (samples/s): the JAX train step vs the PyTorch AdamW step, alternated.

  python benchmarks/bench_train.py [--quick] [--json out.json]
  python benchmarks/bench_train.py --variants 27_3_3,243_27_27 --batch 256 --repeats 5

One step = forward with stochastic depth (rate 0.1), MPJPE loss against the
root-zeroed target, backward, AdamW (lr 1e-4, weight decay 0.1) update.
JAX: `train_step.make_train_step` (jitted, state donated), exactly the step
`train.py` runs, in the microbatches it picks (``train.grad_accum_steps`` 0,
`cpu_tuning.train_microbatches`: the long variants at large batches; column
"parts"). PyTorch: the reference model in train mode,
``zero_grad(set_to_none=True); loss.backward(); opt.step()`` with
``torch.optim.AdamW`` (its default for-each implementation on CPU). Same
initial weights, same batch, same thread count.

Each framework runs in a process of its own (`common.Remote`), as its users run
it: the JAX process with `train.py`'s host memory policy (`poseformer_jax.host_memory`:
XLA's freed buffers are kept for the next step), the PyTorch process with malloc as
it is. The parent alternates them, and each side's turn opens with one untimed step,
so every timed step follows a step of its own framework, as in training
(`common.alternate`'s ``settle``). For the JAX-only throughput at the real batch
size see `bench_train_step.py`. `--max-work` (GFLOPs per step) caps the batch; the
default lets every variant run at 64 and 256 (one 243_27_27 step at 256 takes
6-14 s per side on a 2-core CPU); lower it for a quick look.
"""

from __future__ import annotations

import sys

import common
import jax
import numpy as np
from absl import flags

from poseformer_jax import model as model_lib
from poseformer_jax import parallel, train_step


def build_jax(variant: str, batch: int):
  """The JAX side (in its own process): `train.py`'s jitted step, state donated, in the
  microbatches it picks, on the reference's weights. Returns (call, {'parts': n})."""
  cfg = common.model_config(variant)
  m = cfg.model
  _, _, params = common.reference_pair(variant, torch_model=False)
  model = model_lib.from_config(m)
  mesh = parallel.make_mesh()
  tx = train_step.make_optimizer(cfg.train, steps_per_epoch=1000)
  _, dropout_key = train_step.rng_keys(0)
  state = train_step.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                               opt_state=tx.init(params))
  state = jax.device_put(state, parallel.replicated(mesh))
  parts = train_step.microbatches(0, m, batch, mesh)
  step = train_step.make_train_step(model, tx, mesh, dropout_key, parts)
  x_np, y_np = _batch(m, batch)
  batch_dev = parallel.global_batch({"inputs": x_np, "targets": y_np}, mesh)
  holder = {"state": state}

  def call():
    holder["state"], metrics = step(holder["state"], batch_dev)
    metrics["loss"].block_until_ready()

  return call, {"parts": parts}


def build_torch(variant: str, batch: int):
  """The PyTorch side (in its own process): the reference model in train mode, same
  weights and drop-path rate, ``torch.optim.AdamW``. Returns (call, {})."""
  import torch

  from torch_checkpoints import random_reference  # needs torch

  cfg = common.model_config(variant)
  m = cfg.model
  ref = random_reference(m.num_frames, m.kept_frames, m.kept_coeffs, seed=0,
                         drop_path_rate=float(m.drop_path_rate)).train()
  opt = torch.optim.AdamW(ref.parameters(), lr=float(cfg.train.learning_rate),
                          weight_decay=float(cfg.train.weight_decay))
  x_np, y_np = _batch(m, batch)
  x_t, y_t = torch.from_numpy(x_np), torch.from_numpy(y_np.copy())
  y_t[:, :, 0] = 0.0

  def call():
    opt.zero_grad(set_to_none=True)
    loss = torch.mean(torch.norm(ref(x_t) - y_t, dim=-1))
    loss.backward()
    opt.step()

  return call, {}


def _batch(m, batch: int) -> tuple[np.ndarray, np.ndarray]:
  """The same random (inputs, targets) on both sides."""
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, size=(batch, m.num_frames, m.num_joints, 2)).astype(np.float32)
  y = (rng.normal(size=(batch, 1, m.num_joints, 3)) * 0.2).astype(np.float32)
  return x, y


def run(variants, batches, repeats, max_gflop, target_s, cache=True):
  rows = []
  for v, batch in [(v, b) for b in batches for v in variants]:
    b = common.capped_batch(v, batch, max_gflop, passes=3)  # fwd + bwd ~ 3x fwd
    with common.jax_remote(build_jax, v, b, cache=cache) as jx, \
         common.torch_remote(build_torch, v, b) as pt:
      t = common.alternate({"jax": jx, "torch": pt}, repeats=repeats, target_s=target_s,
                           settle=1)
    row = {"variant": v, "batch": b, "parts": jx.info["parts"],
           "jax_sps": b / t["jax"]["median"], "torch_sps": b / t["torch"]["median"],
           "jax_ms": t["jax"]["median"] * 1e3, "torch_ms": t["torch"]["median"] * 1e3}
    row["ratio"] = row["jax_sps"] / row["torch_sps"]
    row["ratio_spread"] = common.ratio_spread(t)
    rows.append(row)
    print(f"{v:>10} batch {b:5d}: JAX {row['jax_sps']:9,.1f} samples/s  "
          f"torch {row['torch_sps']:9,.1f} samples/s  ratio {row['ratio']:.2f}", flush=True)
  return rows


def main(argv=None) -> int:
  fv = common.benchmark_flags(variants=common.VARIANTS, target=0.5, max_work=(
      1000.0, "batch x 3 x forward GFLOPs per step (1000: every variant at 256; "
      "120 caps 81_9_9 at 64 and 243_27_27 at 32)"))
  flags.DEFINE_list("batch", ["64", "256"], "Batches per step (capped by --max-work).",
                    flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  variants, max_work, target = fv.variants, fv["max-work"].value, fv.target
  repeats = fv.repeats or 5
  if fv.quick:
    variants = ["27_3_3"]
    max_work = min(max_work, 20.0)
    repeats, target = fv.repeats or 3, 0.2
  batches = [int(b) for b in fv.batch]
  if fv.quick:
    batches = batches[:1]
  rows = run(variants, batches, repeats, max_work, target, cache=not fv["no-cache"].value)
  return common.report(
      ["variant", "batch", "parts", "JAX samples/s", "PyTorch samples/s", "JAX/PyTorch", "per round",
       "JAX ms/step", "PyTorch ms/step"],
      [[r["variant"], r["batch"], r["parts"], r["jax_sps"], r["torch_sps"], f"{r['ratio']:.2f}x",
        r["ratio_spread"], r["jax_ms"], r["torch_ms"]] for r in rows],
      title=f"Training step (fwd + bwd + AdamW), float32, {common.CORES} threads each",
      json_path=fv.json, payload={"benchmark": "train", "repeats": repeats, "results": rows})


if __name__ == "__main__":
  sys.exit(main())
