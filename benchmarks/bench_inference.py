"""Inference throughput (frames/s): JAX jitted float32 vs the PyTorch reference, alternated.

  python benchmarks/bench_inference.py [--quick] [--json out.json]
  python benchmarks/bench_inference.py --variants 27_3_3 --batches 64,1024 --repeats 7

JAX runs the project's forward (`inference.chunked_apply` with
`cpu_tuning.compiler_options("forward")`, as `Predictor` does, without the flip).
Both frameworks run the same random weights (the PyTorch reference model of
the tests, converted with `torch_to_flax`) on the same inputs with the same
thread count; the PyTorch side is eager under ``torch.inference_mode()``.
One output frame per window, so frames/s = windows/s. Each framework runs in a
process of its own (`common.Remote`; JAX with the host memory policy of
`eval.py`), as its users run it; each repeat times JAX then PyTorch, each turn
after one untimed call of the same side (`common.alternate`'s ``settle``);
medians over repeats. `--max-work` caps batch x per-frame
cost on this CPU (243_27_27 at batch 1024 is ~1 TFLOP per call): a capped
case runs at the largest batch below the cap and says so.
"""

from __future__ import annotations

import sys

import common
import jax
import numpy as np
from absl import flags

from poseformer_jax import cpu_tuning, inference


def build_jax(variant: str, batch: int):
  """The JAX side (in its own process): Predictor's network call (chunked on a CPU) with its
  compiler options. Returns (call, {'out': the outputs})."""
  _, model, params = common.reference_pair(variant, torch_model=False)
  fwd = jax.jit(inference.chunked_apply(model, inference.default_chunk_rows()),
                compiler_options=cpu_tuning.compiler_options("forward"))
  x = jax.device_put(common.inputs(variant, batch))
  out = np.asarray(fwd(params, x))

  def call():
    fwd(params, x).block_until_ready()

  return call, {"out": out}


def build_torch(variant: str, batch: int):
  """The PyTorch side (in its own process): the reference in eager mode under
  ``torch.inference_mode()``, same weights and inputs. Returns (call, {'out': ...})."""
  import torch

  from torch_checkpoints import random_reference  # needs torch

  m = common.model_config(variant).model
  ref = random_reference(m.num_frames, m.kept_frames, m.kept_coeffs, seed=0)  # as reference_pair
  x = torch.from_numpy(common.inputs(variant, batch))

  def call():
    with torch.inference_mode():
      return ref(x)

  return call, {"out": call().numpy()}


def run(variants, batches, repeats, max_gflop, target_s, cache=True):
  results = []
  for v in variants:
    for b in batches:
      run_b = common.capped_batch(v, b, max_gflop)
      with common.jax_remote(build_jax, v, run_b, cache=cache) as jx, \
           common.torch_remote(build_torch, v, run_b) as pt:
        err = float(np.abs(jx.info["out"] - pt.info["out"]).max())
        t = common.alternate({"jax": jx, "torch": pt}, repeats=repeats, target_s=target_s,
                             settle=1)
      row = {"variant": v, "batch": b, "run_batch": run_b,
             "jax_fps": run_b / t["jax"]["median"], "torch_fps": run_b / t["torch"]["median"],
             "jax_ms": t["jax"]["median"] * 1e3, "torch_ms": t["torch"]["median"] * 1e3,
             "max_abs_diff_m": err}
      row["ratio"] = row["jax_fps"] / row["torch_fps"]
      row["ratio_spread"] = common.ratio_spread(t)
      results.append(row)
      capped = f" (capped to {run_b})" if run_b != b else ""
      print(f"{v:>10} batch {b:5d}{capped}: JAX {row['jax_fps']:10,.0f} f/s  "
            f"torch {row['torch_fps']:10,.0f} f/s  ratio {row['ratio']:.2f}  "
            f"max|diff| {err:.1e} m", flush=True)
  return results


def main(argv=None) -> int:
  fv = common.benchmark_flags(variants=common.VARIANTS, target=0.4, max_work=(
      1200.0, "batch x GFLOPs per call (1200: every variant at 1024; 300 caps 243_27_27 at 256)"))
  flags.DEFINE_list("batches", ["1", "64", "256", "1024"], "Batch sizes.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  variants, max_work, target = fv.variants, fv["max-work"].value, fv.target
  batches = [int(b) for b in fv.batches]
  repeats = fv.repeats or 5
  if fv.quick:
    variants, batches = variants[:2], [1, 64]
    repeats, target = fv.repeats or 3, 0.15
  rows = run(variants, batches, repeats, max_work, target, cache=not fv["no-cache"].value)
  return common.report(
      ["variant", "batch", "JAX f/s", "PyTorch f/s", "JAX/PyTorch", "per round", "JAX ms/call",
       "max |diff| m"],
      [[r["variant"], r["batch"] if r["batch"] == r["run_batch"] else f"{r['run_batch']}*",
        r["jax_fps"], r["torch_fps"], f"{r['ratio']:.2f}x", r["ratio_spread"], r["jax_ms"],
        f"{r['max_abs_diff_m']:.1e}"]
       for r in rows],
      title=f"Inference throughput, float32, {common.CORES} threads each "
            f"(* = batch capped by --max-work {max_work:g} GFLOP/call)",
      json_path=fv.json, payload={"benchmark": "inference", "repeats": repeats, "results": rows})


if __name__ == "__main__":
  sys.exit(main())
