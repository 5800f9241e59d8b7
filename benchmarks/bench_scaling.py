"""Scaling: train-step samples/s vs simulated CPU devices, and forward cost vs F and f/n.

  python benchmarks/bench_scaling.py [--quick] [--json out.json]

Devices: one subprocess per N in --devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``; each runs the
data-parallel train step of `train_lib` (batch split over a 'data' mesh of N
devices) at the same global batch. On a CPU the N simulated devices share the
same cores, so this measures the overhead of sharding (collectives, per-device
dispatch, smaller per-device matmuls), not a speed-up: ideal is a flat line.
With real accelerators the same script measures the speed-up.

Cost vs F and f/n: XLA-counted forward FLOPs per frame and measured JAX
frames/s at one batch for F in {27, 81, 243} with f = n in {1, 3, 9, 27}
(where f <= F), alternated in one process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import common
import jax
import numpy as np
from absl import flags

from poseformer_jax import flops
from poseformer_jax import model as model_lib

CHILD = r"""
import json, sys
sys.path.insert(0, {bench!r})
import common, jax, jax.numpy as jnp, numpy as np
from poseformer_jax import model as model_lib, parallel, train_step
variant, batch, steps = {variant!r}, {batch}, {steps}
cfg = common.model_config(variant); m = cfg.model
mesh = parallel.make_mesh()
model = model_lib.from_config(m)
tx = train_step.make_optimizer(cfg.train, 1000)
init_key, dk = train_step.rng_keys(0)
state = train_step.init_state(model, tx, init_key, mesh)
step = train_step.make_train_step(model, tx, mesh, dk)
rng = np.random.default_rng(0)
data = parallel.global_batch({{
    "inputs": rng.uniform(-1, 1, (batch, m.num_frames, 17, 2)).astype(np.float32),
    "targets": (rng.normal(size=(batch, 1, 17, 3)) * .2).astype(np.float32)}}, mesh)
holder = {{"state": state}}
def one_step():
  holder["state"], mt = step(holder["state"], data)
  mt["loss"].block_until_ready()
one_step()
times = [common.timed(one_step) for _ in range(steps)]
print("RESULT", json.dumps({{"devices": jax.device_count(), "step_s": float(np.median(times))}}))
"""


def device_scaling(variant, batch, devices, steps, rounds):
  """Alternates the device counts over `rounds` rounds of subprocesses; median step time."""
  out = {n: [] for n in devices}
  for _ in range(rounds):
    for n in devices:
      env = dict(os.environ)
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count={n}").strip()
      code = CHILD.format(bench=str(common.REPO / "benchmarks"), variant=variant, batch=batch,
                          steps=steps)
      res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
      line = [x for x in res.stdout.splitlines() if x.startswith("RESULT")]
      if not line:
        raise RuntimeError(f"{n} devices failed:\n{res.stderr[-2000:]}")
      out[n].append(json.loads(line[0][7:])["step_s"])
  rows = []
  for n in devices:
    s = statistics.median(out[n])
    rows.append({"devices": n, "batch": batch, "step_s": s, "samples_per_s": batch / s})
  base = rows[0]["samples_per_s"]
  for r in rows:
    r["relative"] = r["samples_per_s"] / base
  return rows


def cost_grid(frames_list, kept_list, batch, repeats):
  cases, fns = [], {}
  for frames in frames_list:
    for k in kept_list:
      if k > frames:
        continue
      cfg = common.model_config("27_3_3")
      cfg.model.num_frames, cfg.model.kept_frames, cfg.model.kept_coeffs = frames, k, k
      model = model_lib.from_config(cfg.model)
      x = jax.device_put(np.random.default_rng(0).uniform(
          -1, 1, (batch, frames, 17, 2)).astype(np.float32))
      params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
      f = jax.jit(lambda p, v, model=model: model.apply({"params": p}, v))
      name = f"{frames}_{k}_{k}"
      fns[name] = lambda f=f, p=params, x=x: f(p, x).block_until_ready()
      cases.append((name, frames, k, flops.forward_flops(cfg.model, batch) / 1e6))
  t = common.alternate(fns, repeats=repeats, target_s=0.2)
  return [{"config": n, "F": fr, "f=n": k, "xla_mflops_per_frame": mf,
           "jax_fps": batch / t[n]["median"]} for n, fr, k, mf in cases]


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_string("variant", "27_3_3", "Published variant of the train step.", flag_values=fv)
  flags.DEFINE_integer("batch", 128, "Global train batch.", flag_values=fv)
  flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Simulated CPU device counts.",
                    flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Timed steps per subprocess.", flag_values=fv)
  flags.DEFINE_integer("rounds", 2, "Alternated rounds of subprocesses.", flag_values=fv)
  flags.DEFINE_integer("grid-batch", 64, "Batch of the F and f/n grid.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  batch, steps, rounds, grid_batch = fv.batch, fv.steps, fv.rounds, fv["grid-batch"].value
  devices = [int(d) for d in fv.devices]
  frames_list, kept_list = [27, 81, 243], [1, 3, 9, 27]
  if fv.quick:
    batch, steps, rounds, devices = 32, 2, 1, [1, 2]
    frames_list, kept_list, grid_batch = [27, 81], [1, 3], 16
  dev_rows = device_scaling(fv.variant, batch, devices, steps, rounds)
  print(common.table(["devices", "global batch", "ms/step", "samples/s", "relative to 1"],
                     [[r["devices"], r["batch"], r["step_s"] * 1e3, r["samples_per_s"],
                       f"{r['relative']:.2f}"] for r in dev_rows],
                     title=f"Train step {fv.variant} vs simulated CPU devices "
                           f"(all share {common.CORES} cores: overhead, not speed-up)"))
  grid = cost_grid(frames_list, kept_list, grid_batch, fv.repeats or 3)
  print()
  print(common.table(["F", "f = n", "XLA MFLOPs/frame", "JAX frames/s"],
                     [[r["F"], r["f=n"], r["xla_mflops_per_frame"], r["jax_fps"]] for r in grid],
                     title=f"Forward cost vs F and f/n (batch {grid_batch})"))
  common.write_json(fv.json, {"benchmark": "scaling", "devices": dev_rows, "grid": grid})
  return 0


if __name__ == "__main__":
  sys.exit(main())
