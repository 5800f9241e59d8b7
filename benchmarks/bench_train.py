"""Training throughput (samples/s): the JAX train step vs the PyTorch AdamW step, alternated.

  python benchmarks/bench_train.py [--quick] [--json out.json]
  python benchmarks/bench_train.py --variants 27_3_3,243_27_27 --batch 256 --repeats 5

One step = forward with stochastic depth (rate 0.1), MPJPE loss against the
root-zeroed target, backward, AdamW (lr 1e-4, weight decay 0.1) update.
JAX: `train_lib.make_train_step` (jitted, state donated), exactly the step
`train.py` runs. PyTorch: the reference model in train mode,
``zero_grad(set_to_none=True); loss.backward(); opt.step()`` with
``torch.optim.AdamW`` (its default for-each implementation on CPU). Same
initial weights, same batch, same thread count. For the JAX-only throughput
at the real batch size see `bench_train_step.py`; on this CPU the batch is
capped (`--max-work`, GFLOPs per step) so that one step takes seconds, not
minutes.
"""

from __future__ import annotations

import argparse

import common

VARIANTS = ["27_1_3", "27_3_3", "81_1_3", "81_3_3", "81_9_9", "243_27_27"]
MFLOPS = {"27_1_3": 77.2, "27_3_3": 117.3, "81_1_3": 77.2, "81_3_3": 117.3,
          "81_9_9": 351.7, "243_27_27": 1054.8}


def capped_batch(variant: str, batch: int, max_gflop: float) -> int:
  while batch > 1 and batch * 3 * MFLOPS[variant] / 1e3 > max_gflop:  # fwd + bwd ~ 3x fwd
    batch //= 2
  return batch


def run(variants, batch, repeats, max_gflop, target_s):
  import jax
  import numpy as np
  from poseformer_jax import model as model_lib
  from poseformer_jax import parallel, train_lib
  torch = common.setup_torch()
  from torch_checkpoints import random_reference

  rows = []
  for v in variants:
    b = capped_batch(v, batch, max_gflop)
    cfg = common.model_config(v)
    m = cfg.model
    # Same weights; the torch model trains with the same drop-path rate as the JAX step.
    ref = random_reference(m.num_frames, m.kept_frames, m.kept_coeffs, seed=0,
                           drop_path_rate=float(m.drop_path_rate)).train()
    _, _, params = common.reference_pair(v, torch_model=False)
    model = model_lib.from_config(m)
    mesh = parallel.make_mesh()
    tx = train_lib.make_optimizer(cfg.train, steps_per_epoch=1000)
    _, dropout_key = train_lib.rng_keys(0)
    state = train_lib.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                                 opt_state=tx.init(params))
    state = jax.device_put(state, parallel.replicated(mesh))
    step = train_lib.make_train_step(model, tx, mesh, dropout_key)
    rng = np.random.default_rng(0)
    x_np = rng.uniform(-1, 1, size=(b, m.num_frames, m.num_joints, 2)).astype(np.float32)
    y_np = (rng.normal(size=(b, 1, m.num_joints, 3)) * 0.2).astype(np.float32)
    batch_dev = parallel.global_batch({"inputs": x_np, "targets": y_np}, mesh)

    opt = torch.optim.AdamW(ref.parameters(), lr=float(cfg.train.learning_rate),
                            weight_decay=float(cfg.train.weight_decay))
    x_t, y_t = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())
    y_t[:, :, 0] = 0.0

    holder = {"state": state}

    def jax_call():
      holder["state"], metrics = step(holder["state"], batch_dev)
      metrics["loss"].block_until_ready()

    def torch_call():
      opt.zero_grad(set_to_none=True)
      loss = torch.mean(torch.norm(ref(x_t) - y_t, dim=-1))
      loss.backward()
      opt.step()

    t = common.alternate({"jax": jax_call, "torch": torch_call}, repeats=repeats,
                         target_s=target_s)
    row = {"variant": v, "batch": b, "jax_sps": b / t["jax"]["median"],
           "torch_sps": b / t["torch"]["median"], "jax_ms": t["jax"]["median"] * 1e3,
           "torch_ms": t["torch"]["median"] * 1e3}
    row["ratio"] = row["jax_sps"] / row["torch_sps"]
    rows.append(row)
    print(f"{v:>10} batch {b:5d}: JAX {row['jax_sps']:9,.1f} samples/s  "
          f"torch {row['torch_sps']:9,.1f} samples/s  ratio {row['ratio']:.2f}", flush=True)
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  common.add_common_args(p)
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--batch", type=int, default=1024)
  p.add_argument("--max-work", type=float, default=120.0,
                 help="cap on batch x 3 x forward GFLOPs per step (default 120: "
                      "27-frame models at 256, 243_27_27 at 32)")
  p.add_argument("--target", type=float, default=0.5, help="seconds per timed sample")
  args = p.parse_args(argv)
  if not args.no_cache:
    common.enable_compilation_cache()
  variants = args.variants.split(",")
  repeats = args.repeats or 5
  if args.quick:
    variants = ["27_3_3"]
    args.max_work = min(args.max_work, 20.0)
    repeats, args.target = args.repeats or 3, 0.2
  rows = run(variants, args.batch, repeats, args.max_work, args.target)
  print()
  print(common.table(
      ["variant", "batch", "JAX samples/s", "PyTorch samples/s", "JAX/PyTorch", "JAX ms/step",
       "PyTorch ms/step"],
      [[r["variant"], r["batch"], r["jax_sps"], r["torch_sps"], f"{r['ratio']:.2f}x",
        r["jax_ms"], r["torch_ms"]] for r in rows],
      title=f"Training step (fwd + bwd + AdamW), float32, {common.CORES} threads each"))
  common.write_json(args.json, {"benchmark": "train", "repeats": repeats, "results": rows})
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
