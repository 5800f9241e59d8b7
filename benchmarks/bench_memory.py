"""Peak memory of the training step and of the evaluation step per variant (XLA's own accounting).

  python benchmarks/bench_memory.py [--quick] [--json out.json] [--batch 1024]

Compiles (does not run) the jitted train step of `train_lib` (forward with
drop path, backward, AdamW; state donated) and the evaluation forward of
`inference.Predictor` (plain + flipped windows in one call, so 2 x batch
rows), then reads ``compiled.memory_analysis()``: arguments, outputs, XLA
temporaries, and the buffers donated/aliased. Peak = arguments + outputs +
temporaries - aliased, the live device memory of one call. Compile-only, so
batch 1024 (the paper's) is cheap even for 243_27_27.
"""

from __future__ import annotations

import sys

import common
import jax
import jax.numpy as jnp
from absl import flags

from poseformer_jax import evaluation, model as model_lib, parallel, train_step
from poseformer_jax.data import skeleton

MIB = 1024 ** 2


def analyse(compiled) -> dict:
  m = compiled.memory_analysis()
  out = {k: int(getattr(m, f"{k}_size_in_bytes")) for k in
         ("argument", "output", "temp", "alias", "generated_code")}
  out["peak"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
  return out


def run(variants, batch):
  rows = []
  for v in variants:
    cfg = common.model_config(v)
    m = cfg.model
    model = model_lib.from_config(m)
    mesh = parallel.make_mesh()
    tx = train_step.make_optimizer(cfg.train, 1000)
    init_key, dk = train_step.rng_keys(0)
    state = train_step.init_state(model, tx, init_key, mesh, abstract=True)
    spec = train_step.step_spec(model, tx, mesh, dk)
    sh = parallel.batch_sharding(mesh)
    batch_spec = {"inputs": jax.ShapeDtypeStruct((batch, m.num_frames, m.num_joints, 2),
                                                 jnp.float32, sharding=sh),
                  "targets": jax.ShapeDtypeStruct((batch, 1, m.num_joints, 3), jnp.float32,
                                                  sharding=sh)}
    # The step as train.py jits it (state donated; on a CPU cpu_tuning's options).
    train = analyse(jax.jit(train_step.train_step, **train_step.jit_kwargs(mesh)).lower(
        state, batch_spec, spec).compile())
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state.params)
    pred = evaluation.Predictor(model, params, batch_size=batch, flip=True,
                                kps_left=skeleton.JOINTS_LEFT, kps_right=skeleton.JOINTS_RIGHT,
                                joints_left=skeleton.JOINTS_LEFT,
                                joints_right=skeleton.JOINTS_RIGHT)
    x = jax.ShapeDtypeStruct((batch, m.num_frames, m.num_joints, 2), jnp.float32)
    evaluate = analyse(pred._forward.lower(pred.params, x).compile())
    n_params = sum(int(a.size) for a in jax.tree.leaves(params))
    rows.append({"variant": v, "batch": batch, "params": n_params, "train": train,
                 "eval": evaluate})
    print(f"{v:>10}: train peak {train['peak'] / MIB:8.1f} MiB  eval peak "
          f"{evaluate['peak'] / MIB:8.1f} MiB", flush=True)
  return rows


def main(argv=None) -> int:
  fv = common.benchmark_flags(variants=common.VARIANTS)
  flags.DEFINE_integer("batch", 1024, "Training batch (evaluation: 2 x batch rows with flip).",
                       flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  variants, batch = fv.variants, fv.batch
  if fv.quick:
    variants, batch = variants[:2], min(batch, 64)
  rows = run(variants, batch)
  return common.report(
      ["variant", "params", "train peak MiB", "train temp MiB", "train args MiB",
       "eval peak MiB", "eval temp MiB"],
      [[r["variant"], f"{r['params'] / 1e6:.2f} M", r["train"]["peak"] / MIB,
        r["train"]["temp"] / MIB, r["train"]["argument"] / MIB, r["eval"]["peak"] / MIB,
        r["eval"]["temp"] / MIB] for r in rows],
      title=f"Peak memory per call (XLA memory_analysis), batch {batch} "
            f"(eval: {2 * batch} rows with flip), float32",
      json_path=fv.json, payload={"benchmark": "memory", "results": rows})


if __name__ == "__main__":
  sys.exit(main())
