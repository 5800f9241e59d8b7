"""Inference throughput (frames/s): what a user calls, jitted float32, vs the PyTorch reference.

  python benchmarks/bench_inference.py [--quick] [--json out.json]
  python benchmarks/bench_inference.py --variants 27_3_3 --batches 64,1024 --repeats 7

Two JAX contenders, each on the model and parameters `poseformer_jax.load_checkpoint`
returns for a checkpoint of the weights below (written once per variant to a temporary
directory), as the README's Public API uses them:

* ``jit_apply`` — ``poseformer_jax.jit_apply(model)``, the documented call: the network
  call `Predictor` runs (``inference.chunked_apply`` with
  ``cpu_tuning.compiler_options("forward")``, without the flip);
* ``jax.jit(model.apply)`` — the plain Flax call on the same model (the CPU attention
  forms `load_checkpoint` returns; no compiler options, no chunks).

Both frameworks run the same random weights (the PyTorch reference model of
the tests, converted with `torch_to_flax`) on the same inputs with the same
thread count; the PyTorch side is eager under ``torch.inference_mode()``.
One output frame per window, so frames/s = windows/s. Each contender runs in a
process of its own (`common.Remote`; JAX with the host memory policy of
`eval.py`), as its users run it; each repeat times every contender in turn, each
turn after one untimed call of the same side (`common.alternate`'s ``settle``);
medians over repeats, ratios from the same run. `--max-work` caps batch x per-frame
cost on this CPU (243_27_27 at batch 1024 is ~1 TFLOP per call): a capped
case runs at the largest batch below the cap and says so. `--no-apply` leaves the
plain ``jax.jit(model.apply)`` contender out.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import common
import jax
import numpy as np
from absl import flags

import poseformer_jax
from poseformer_jax import checkpoint


def write_checkpoint(variant: str, directory: Path) -> Path:
  """The reference weights of `variant` (`common.reference_pair`) as a checkpoint directory."""
  _, _, params = common.reference_pair(variant, torch_model=False)
  return checkpoint.save_params(directory / variant, params, common.model_config(variant))


def build_jax(ckpt: str, variant: str, batch: int, plain: bool = False):
  """A JAX side (in its own process): the model `load_checkpoint(ckpt)` returns, called as
  ``poseformer_jax.jit_apply(model)`` or, with `plain`, ``jax.jit(model.apply)``.
  Returns (call, {'out': the outputs, 'form': the model's attention forms})."""
  model, params, _ = poseformer_jax.load_checkpoint(ckpt)
  fwd = jax.jit(model.apply) if plain else poseformer_jax.jit_apply(model)
  variables = {"params": params}
  x = jax.device_put(common.inputs(variant, batch))
  out = np.asarray(fwd(variables, x))

  def call():
    fwd(variables, x).block_until_ready()

  return call, {"out": out, "form": f"{model.spatial_attention}/{model.mixed_attention}"}


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


def run(variants, batches, repeats, max_gflop, target_s, cache=True, plain=True):
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    for v in variants:
      ckpt = str(write_checkpoint(v, Path(tmp)))
      for b in batches:
        results.append(run_case(ckpt, v, b, repeats, max_gflop, target_s, cache, plain))
  return results


def run_case(ckpt, v, b, repeats, max_gflop, target_s, cache, plain) -> dict:
  """One (variant, batch) cell: every contender in its own process, alternated."""
  run_b = common.capped_batch(v, b, max_gflop)
  sides = {"jax": common.jax_remote(build_jax, ckpt, v, run_b, cache=cache)}
  try:
    if plain:
      sides["apply"] = common.jax_remote(build_jax, ckpt, v, run_b, True, cache=cache)
    sides["torch"] = common.torch_remote(build_torch, v, run_b)
    err = {k: float(np.abs(r.info["out"] - sides["torch"].info["out"]).max())
           for k, r in sides.items() if k != "torch"}
    form = sides["jax"].info["form"]
    t = common.alternate(sides, repeats=repeats, target_s=target_s, settle=1)
  finally:
    for side in sides.values():
      side.close()
  row = {"variant": v, "batch": b, "run_batch": run_b, "attention": form,
         "jax_fps": run_b / t["jax"]["median"], "torch_fps": run_b / t["torch"]["median"],
         "jax_ms": t["jax"]["median"] * 1e3, "torch_ms": t["torch"]["median"] * 1e3,
         "max_abs_diff_m": max(err.values())}
  row["ratio"] = row["jax_fps"] / row["torch_fps"]
  row["ratio_spread"] = common.ratio_spread(t)
  if plain:
    row["apply_fps"] = run_b / t["apply"]["median"]
    row["apply_ratio"] = row["apply_fps"] / row["torch_fps"]
    row["apply_spread"] = common.ratio_spread(t, fast="apply")
  capped = f" (capped to {run_b})" if run_b != b else ""
  apply = f"  jax.jit(model.apply) {row['apply_fps']:8,.0f} f/s" if plain else ""
  print(f"{v:>10} batch {b:5d}{capped}: jit_apply {row['jax_fps']:8,.0f} f/s{apply}  "
        f"torch {row['torch_fps']:8,.0f} f/s  ratio {row['ratio']:.2f}  "
        f"max|diff| {row['max_abs_diff_m']:.1e} m", flush=True)
  return row


def main(argv=None) -> int:
  fv = common.benchmark_flags(variants=common.VARIANTS, target=0.4, max_work=(
      1200.0, "batch x GFLOPs per call (1200: every variant at 1024; 300 caps 243_27_27 at 256)"))
  flags.DEFINE_list("batches", ["1", "64", "256", "1024"], "Batch sizes.", flag_values=fv)
  flags.DEFINE_bool("no-apply", False, "Leave out the plain jax.jit(model.apply) contender.",
                    flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  variants, max_work, target = fv.variants, fv["max-work"].value, fv.target
  batches = [int(b) for b in fv.batches]
  repeats = fv.repeats or 5
  if fv.quick:
    variants, batches = variants[:2], [1, 64]
    repeats, target = fv.repeats or 3, 0.15
  plain = not fv["no-apply"].value
  rows = run(variants, batches, repeats, max_work, target, cache=not fv["no-cache"].value,
             plain=plain)
  headers = ["variant", "batch", "jit_apply f/s", "PyTorch f/s", "jit_apply/PyTorch", "per round"]
  if plain:
    headers += ["jax.jit(model.apply) f/s", "apply/PyTorch", "per round"]
  headers += ["jit_apply ms/call", "max |diff| m"]

  def cells(r):
    out = [r["variant"], r["batch"] if r["batch"] == r["run_batch"] else f"{r['run_batch']}*",
           r["jax_fps"], r["torch_fps"], f"{r['ratio']:.2f}x", r["ratio_spread"]]
    if plain:
      out += [r["apply_fps"], f"{r['apply_ratio']:.2f}x", r["apply_spread"]]
    return out + [r["jax_ms"], f"{r['max_abs_diff_m']:.1e}"]

  return common.report(
      headers, [cells(r) for r in rows],
      title=f"Inference throughput, float32, {common.CORES} threads each "
            f"(* = batch capped by --max-work {max_work:g} GFLOP/call)",
      json_path=fv.json, payload={"benchmark": "inference", "repeats": repeats, "results": rows})


if __name__ == "__main__":
  sys.exit(main())
