"""Mixed precision: bfloat16 compute vs float32, speed and accuracy on a converted checkpoint.

  python benchmarks/bench_bf16.py [--quick] [--json out.json]

Weights: the random-weight PyTorch reference converted with `torch_to_flax`
(a "converted checkpoint"); parameters stay float32, ``model.dtype`` sets the
compute dtype. Speed: jitted forward at --batch, alternated. Accuracy: the
full evaluation protocol (`evaluation.evaluate`, flip on) on synthetic
Human3.6M test data, P1 with each dtype and the mean distance between the two
predictions. On this CPU (AVX2, no native bf16 arithmetic) bfloat16 is emulated
by conversions, so it is expected to be slower; the accuracy columns hold on
any backend.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import common
import jax
import numpy as np
from absl import flags
from bench_eval import load_synthetic

from poseformer_jax import evaluation, model as model_lib

VARIANTS = ["27_3_3", "81_9_9", "243_27_27"]


def run(variants, batch, repeats, actions, frames):
  with tempfile.TemporaryDirectory() as tmp:
    sequences, info = load_synthetic(Path(tmp), actions, frames)
  rows = []
  for v in variants:
    _, _, params = common.reference_pair(v, torch_model=False)
    models = {d: model_lib.from_config(common.model_config(v, d).model)
              for d in ("float32", "bfloat16")}
    x = jax.device_put(common.inputs(v, batch))
    fns = {}
    for d, mdl in models.items():
      f = jax.jit(lambda p, x, mdl=mdl: mdl.apply({"params": p}, x))
      fns[d] = lambda f=f: f(params, x).block_until_ready()
    t = common.alternate(fns, repeats=repeats, target_s=0.3)
    res, preds = {}, {}
    for d, mdl in models.items():
      pr = evaluation.make_predictor(mdl, params, info, batch_size=256, flip=True)
      res[d] = evaluation.evaluate(pr, sequences, info, progress=False)["average"]["p1"]
      preds[d] = np.concatenate(pr.predict_sequences([s.keypoints_2d for s in sequences]))
    dist = float(np.mean(np.linalg.norm(preds["float32"] - preds["bfloat16"], axis=-1)) * 1000)
    row = {"variant": v, "batch": batch,
           "f32_fps": batch / t["float32"]["median"], "bf16_fps": batch / t["bfloat16"]["median"],
           "p1_f32_mm": res["float32"], "p1_bf16_mm": res["bfloat16"],
           "mean_pred_distance_mm": dist}
    row["speedup"] = row["bf16_fps"] / row["f32_fps"]
    rows.append(row)
    print(f"{v:>10}: f32 {row['f32_fps']:8.1f} f/s  bf16 {row['bf16_fps']:8.1f} f/s  "
          f"P1 {row['p1_f32_mm']:.2f} vs {row['p1_bf16_mm']:.2f} mm", flush=True)
  return rows, sum(len(s) for s in sequences)


def main(argv=None) -> int:
  fv = common.benchmark_flags(variants=VARIANTS)
  flags.DEFINE_integer("batch", 64, "Forward batch of the speed comparison.", flag_values=fv)
  flags.DEFINE_integer("actions", 1, "Synthetic actions per test subject.", flag_values=fv)
  flags.DEFINE_integer("frames", 200, "Frames per synthetic action.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  variants, batch, frames = fv.variants, fv.batch, fv.frames
  repeats = fv.repeats or 3
  if fv.quick:
    variants, batch, frames, repeats = variants[:1], 16, 60, fv.repeats or 2
  rows, total = run(variants, batch, repeats, fv.actions, frames)
  return common.report(
      ["variant", "f32 f/s", "bf16 f/s", "bf16/f32", "P1 f32 mm", "P1 bf16 mm", "|dP1| mm",
       "mean |pred f32 - pred bf16| mm"],
      [[r["variant"], r["f32_fps"], r["bf16_fps"], f"{r['speedup']:.2f}x",
        f"{r['p1_f32_mm']:.3f}", f"{r['p1_bf16_mm']:.3f}",
        f"{abs(r['p1_f32_mm'] - r['p1_bf16_mm']):.3f}", f"{r['mean_pred_distance_mm']:.3f}"]
       for r in rows],
      title=f"bfloat16 vs float32 (forward batch {batch}; P1 over {total} synthetic "
            f"test frames with flip; random-weight converted checkpoint)",
      json_path=fv.json, payload={"benchmark": "bf16", "results": rows})


if __name__ == "__main__":
  sys.exit(main())
