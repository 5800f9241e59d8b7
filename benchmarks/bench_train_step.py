"""Throughput of the jitted data-parallel train step (samples/s), after warm-up.

  python benchmarks/bench_train_step.py                       # 27_3_3 and 243_27_27, batch 1024
  python benchmarks/bench_train_step.py --variants 81_9_9 --batch 512 --steps 5
  python benchmarks/bench_train_step.py --config configs/default.py   # the embedded default model
  python benchmarks/bench_train_step.py --variants 243_27_27 --accum 8  # batch 1024 as 8 x 128

`--accum N` runs the batch as N microbatches in one step (``train.grad_accum_steps``),
for batches whose activations do not fit in memory at once (243_27_27 at 1024 needs
more than the ~20 GB of a small machine without it). The default, 0, is the count
`train.py` picks (`cpu_tuning.train_microbatches`: 1 off a CPU).

Random inputs (the step's cost does not depend on the values); the full
training step: forward with drop path, MPJPE loss, backward, AdamW update,
state donated. Timed over `--steps` steps after `--warmup` steps, blocking on
the result.
"""

from __future__ import annotations

import sys

import common
import jax
import numpy as np
from absl import flags

from poseformer_jax import cli, config_lib, host_memory, model as model_lib, parallel, train_step


def bench(config, batch: int, steps: int, warmup: int, accum: int) -> float:
  mesh = parallel.make_mesh()
  model = model_lib.from_config(config.model)
  tx = train_step.make_optimizer(config.train, steps_per_epoch=1000)
  init_key, dropout_key = train_step.rng_keys(0)
  state = train_step.init_state(model, tx, init_key, mesh)
  step = train_step.make_train_step(model, tx, mesh, dropout_key, accum)
  rng = np.random.default_rng(0)
  m = config.model
  local = {"inputs": rng.normal(size=(batch, m.num_frames, m.num_joints, 2)).astype(np.float32),
           "targets": rng.normal(size=(batch, 1, m.num_joints, 3)).astype(np.float32) * 0.2}
  data = parallel.global_batch(local, mesh)
  holder = {"state": state}

  def one_step():
    holder["state"], metrics = step(holder["state"], data)
    return holder["state"], metrics

  seconds = common.timed(one_step, calls=steps, warmup=warmup, wait=jax.block_until_ready)
  return batch / seconds


def main(argv=None) -> int:
  fv = flags.FlagValues()
  flags.DEFINE_list("variants", ["27_3_3", "243_27_27"], "Published variants F_f_n.",
                    flag_values=fv)
  flags.DEFINE_string("config", None, "A config file instead of --variants.", flag_values=fv)
  flags.DEFINE_integer("batch", 1024, "Global batch.", flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Timed steps.", flag_values=fv)
  flags.DEFINE_integer("warmup", 2, "Untimed steps first (compilation).", flag_values=fv)
  flags.DEFINE_string("dtype", "float32", "Compute dtype (model.dtype).", flag_values=fv)
  flags.DEFINE_integer("accum", 0, "Microbatches per step (0: train.py's automatic count).",
                       lower_bound=0, flag_values=fv)
  status = cli.parse_command_flags(fv, argv, __doc__)
  if status is not None:
    return status
  configs = []
  if fv.config:
    configs.append((fv.config, config_lib.load_config_file(fv.config)))
  else:
    for v in fv.variants:
      c = config_lib.base_config()
      config_lib.set_variant(c, v)
      configs.append((v, c))
  # As train.py: the host memory policy before the backend starts.
  host_memory.configure(configs[0][1].host_memory)
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; batch {fv.batch}")
  for name, c in configs:
    c.model.dtype = fv.dtype
    accum = train_step.microbatches(fv.accum, c.model, fv.batch, parallel.make_mesh())
    sps = bench(c, fv.batch, fv.steps, fv.warmup, accum)
    print(f"{name:>12s}  {fv.dtype}  accum {accum}  {sps:10.1f} samples/s  "
          f"({fv.batch / sps * 1000:.0f} ms/step)", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
