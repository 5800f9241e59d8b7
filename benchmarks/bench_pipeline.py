"""Throughput of the training input pipeline (samples/s), both backends.

    python benchmarks/bench_pipeline.py [--frames 243] [--batch 1024] [--steps 60]

Uses the real Human3.6M training mocap from ../shared/data/h36m when present
(its 2D ground truth is projected into a temporary folder first, never into
the repository), else a synthetic dataset. Flip augmentation on. Each sample
is F*J*2*4 bytes of input (33 KB at F=243), so the pipeline is bound by
memory bandwidth and allocation of the gathered batches.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import common
from absl import flags

from poseformer_jax import cli, config_lib
from poseformer_jax.data import dataset, pipeline, prepare_h36m, synthetic

SHARED_3D = common.REPO.parent / "shared" / "data" / "h36m" / "data_3d_h36m_train.npz"


def load(tmp: Path, force_synthetic: bool):
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints = str(tmp), "gt"
  if SHARED_3D.exists() and not force_synthetic:
    os.symlink(SHARED_3D, tmp / "data_3d_h36m.npz")
    prepare_h36m.prepare(tmp, progress=False)
    source = f"real Human3.6M training mocap ({SHARED_3D})"
  else:
    synthetic.write_h36m(tmp, subjects="S1,S5,S6,S7,S8", actions_per_subject=6, frames=2000)
    source = "synthetic data"
  seqs, info = dataset.load_sequences(cfg, "train")
  return seqs, info, source


def measure(seqs, info, backend: str, frames: int, batch: int, steps: int) -> float:
  pipe = pipeline.TrainPipeline(seqs, info, num_frames=frames, global_batch=batch, seed=0,
                                flip=True, backend=backend, prefetch=2)
  it = pipe.epoch(0)
  # 3 warm-up batches (thread start, tf.data graph, first allocations); the consumer does
  # nothing with a batch: pure pipeline throughput.
  seconds = common.timed(lambda: next(it), calls=min(steps, pipe.steps_per_epoch - 3), warmup=3)
  return batch / seconds


def main(argv=None) -> int:
  fv = flags.FlagValues()
  flags.DEFINE_integer("frames", 243, "Receptive field F.", flag_values=fv)
  flags.DEFINE_integer("batch", 1024, "Global batch.", flag_values=fv)
  flags.DEFINE_integer("steps", 60, "Timed steps (after 3 warm-up steps).", flag_values=fv)
  flags.DEFINE_bool("synthetic", False, "Ignore the shared real data.", flag_values=fv)
  flags.DEFINE_list("backends", ["numpy", "tf"], "Pipeline backends.", flag_values=fv)
  status = cli.parse_command_flags(fv, argv, __doc__)
  if status is not None:
    return status
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    seqs, info, source = load(Path(tmp), fv.synthetic)
    frames_total = sum(len(s) for s in seqs)
    print(f"data: {source}: {len(seqs)} sequences, {frames_total} frames "
          f"(loaded in {time.perf_counter() - t0:.1f} s)")
  bytes_per_sample = fv.frames * info.num_joints * 2 * 4
  print(f"F={fv.frames} batch={fv.batch} flip=on; {bytes_per_sample / 1e3:.1f} kB input per sample")
  for backend in fv.backends:
    rate = measure(seqs, info, backend, fv.frames, fv.batch, fv.steps)
    print(f"{backend:>5}: {rate:10,.0f} samples/s  ({rate * bytes_per_sample / 1e9:.2f} GB/s of windows)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
