"""Inference throughput (frames/s): JAX jitted float32 vs the PyTorch reference, alternated.

  python benchmarks/bench_inference.py [--quick] [--json out.json]
  python benchmarks/bench_inference.py --variants 27_3_3 --batches 64,1024 --repeats 7

Both frameworks run the same random weights (the PyTorch reference model of
the tests, converted with `torch_to_flax`) on the same inputs with the same
thread count; the PyTorch side is eager under ``torch.inference_mode()``.
One output frame per window, so frames/s = windows/s. Each repeat times JAX
then PyTorch; medians over repeats. `--max-work` caps batch x per-frame
cost on this CPU (243_27_27 at batch 1024 is ~1 TFLOP per call): a capped
case runs at the largest batch below the cap and says so.
"""

from __future__ import annotations

import argparse

import common  # noqa: F401  (sys.path, thread setup)

VARIANTS = ["27_1_3", "27_3_3", "81_1_3", "81_3_3", "81_9_9", "243_27_27"]
# Paper MFLOPs per frame, used only to cap the largest cases.
MFLOPS = {"27_1_3": 77.2, "27_3_3": 117.3, "81_1_3": 77.2, "81_3_3": 117.3,
          "81_9_9": 351.7, "243_27_27": 1054.8}


def run(variants, batches, repeats, max_gflop, target_s):
  import jax
  import numpy as np
  torch = common.setup_torch()

  results = []
  for v in variants:
    ref, model, params = common.reference_pair(v)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x, deterministic=True))
    for b in batches:
      run_b = b
      while run_b > 1 and run_b * MFLOPS[v] / 1e3 > max_gflop:
        run_b //= 2
      x_np = common.inputs(v, run_b)
      x_jax = jax.device_put(x_np)
      x_t = torch.from_numpy(x_np.copy())
      jax_out = np.asarray(fwd(params, x_jax))
      with torch.inference_mode():
        t_out = ref(x_t).numpy()
      err = float(np.abs(jax_out - t_out).max())

      def jax_call():
        fwd(params, x_jax).block_until_ready()

      def torch_call():
        with torch.inference_mode():
          ref(x_t)

      t = common.alternate({"jax": jax_call, "torch": torch_call}, repeats=repeats,
                           target_s=target_s)
      row = {"variant": v, "batch": b, "run_batch": run_b,
             "jax_fps": run_b / t["jax"]["median"], "torch_fps": run_b / t["torch"]["median"],
             "jax_ms": t["jax"]["median"] * 1e3, "torch_ms": t["torch"]["median"] * 1e3,
             "max_abs_diff_m": err}
      row["ratio"] = row["jax_fps"] / row["torch_fps"]
      results.append(row)
      capped = f" (capped to {run_b})" if run_b != b else ""
      print(f"{v:>10} batch {b:5d}{capped}: JAX {row['jax_fps']:10,.0f} f/s  "
            f"torch {row['torch_fps']:10,.0f} f/s  ratio {row['ratio']:.2f}  "
            f"max|diff| {err:.1e} m", flush=True)
  return results


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  common.add_common_args(p)
  p.add_argument("--variants", default=",".join(VARIANTS))
  p.add_argument("--batches", default="1,64,1024")
  p.add_argument("--max-work", type=float, default=300.0,
                 help="cap on batch x GFLOPs per call (default 300: 243_27_27 runs at 256)")
  p.add_argument("--target", type=float, default=0.4, help="seconds per timed sample")
  args = p.parse_args(argv)
  if not args.no_cache:
    common.enable_compilation_cache()
  variants = args.variants.split(",")
  batches = [int(b) for b in args.batches.split(",")]
  repeats = args.repeats or 5
  if args.quick:
    variants, batches = variants[:2], [1, 64]
    repeats, args.target = args.repeats or 3, 0.15
  rows = run(variants, batches, repeats, args.max_work, args.target)
  print()
  print(common.table(
      ["variant", "batch", "JAX f/s", "PyTorch f/s", "JAX/PyTorch", "JAX ms/call", "max |diff| m"],
      [[r["variant"], r["batch"] if r["batch"] == r["run_batch"] else f"{r['run_batch']}*",
        r["jax_fps"], r["torch_fps"], f"{r['ratio']:.2f}x", r["jax_ms"], f"{r['max_abs_diff_m']:.1e}"]
       for r in rows],
      title=f"Inference throughput, float32, {common.CORES} threads each "
            f"(* = batch capped by --max-work {args.max_work:g} GFLOP/call)"))
  common.write_json(args.json, {"benchmark": "inference", "repeats": repeats, "results": rows})
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
