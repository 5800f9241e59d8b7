"""Throughput of the jitted data-parallel train step (samples/s), after warm-up.

  python benchmarks/bench_train_step.py                       # 27_3_3 and 243_27_27, batch 1024
  python benchmarks/bench_train_step.py --variants 81_9_9 --batch 512 --steps 5
  python benchmarks/bench_train_step.py --config configs/default.py   # the embedded default model
  python benchmarks/bench_train_step.py --variants 243_27_27 --accum 8  # batch 1024 as 8 x 128

`--accum N` runs the batch as N microbatches in one step (``train.grad_accum_steps``),
for batches whose activations do not fit in memory at once (243_27_27 at 1024 needs
more than the ~20 GB of a small machine without it).

Random inputs (the step's cost does not depend on the values); the full
training step: forward with drop path, MPJPE loss, backward, AdamW update,
state donated. Timed over `--steps` steps after `--warmup` steps, blocking on
the result.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from poseformer_jax import config_lib, model as model_lib, parallel, train_lib  # noqa: E402


def bench(config, batch: int, steps: int, warmup: int, accum: int = 1) -> float:
  mesh = parallel.make_mesh()
  model = model_lib.from_config(config.model)
  tx = train_lib.make_optimizer(config.train, steps_per_epoch=1000)
  init_key, dropout_key = train_lib.rng_keys(0)
  state = train_lib.init_state(model, tx, init_key, mesh)
  step = train_lib.make_train_step(model, tx, mesh, dropout_key, accum)
  rng = np.random.default_rng(0)
  m = config.model
  local = {"inputs": rng.normal(size=(batch, m.num_frames, m.num_joints, 2)).astype(np.float32),
           "targets": rng.normal(size=(batch, 1, m.num_joints, 3)).astype(np.float32) * 0.2}
  data = parallel.global_batch(local, mesh)
  for _ in range(warmup):
    state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, data)
  jax.block_until_ready((state, metrics))
  return steps * batch / (time.perf_counter() - t0)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--variants", default="27_3_3,243_27_27")
  p.add_argument("--config", default=None, help="a config file instead of --variants")
  p.add_argument("--batch", type=int, default=1024)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--accum", type=int, default=1, help="microbatches per step")
  args = p.parse_args()
  configs = []
  if args.config:
    configs.append((args.config, config_lib.load_config_file(args.config)))
  else:
    for v in args.variants.split(","):
      c = config_lib.base_config()
      config_lib.set_variant(c, v)
      configs.append((v, c))
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; batch {args.batch}")
  for name, c in configs:
    c.model.dtype = args.dtype
    sps = bench(c, args.batch, args.steps, args.warmup, args.accum)
    print(f"{name:>12s}  {args.dtype}  accum {args.accum}  {sps:10.1f} samples/s  "
          f"({args.batch / sps * 1000:.0f} ms/step)", flush=True)


if __name__ == "__main__":
  main()
