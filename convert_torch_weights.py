"""Converts an official PoseFormerV2 PyTorch checkpoint into a poseformer-jax checkpoint.

  python convert_torch_weights.py --input 27_243_45.2.bin --frames 243 --output ckpt/243_27_27
  python convert_torch_weights.py --input no_refine_39_2758.pth --frames 81 \
      --config configs/mpi_inf_3dhp.py --output ckpt/3dhp_81_9_9

PyTorch is not needed: the file is read by a restricted unpickler that never
runs code from it. The output loads with ``poseformer_jax.load_checkpoint``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input", required=True, help="official .bin/.pth checkpoint")
  parser.add_argument("--frames", required=True, type=int,
                      help="receptive field F the model was trained with (not stored in the file)")
  parser.add_argument("--output", required=True, help="new checkpoint directory")
  parser.add_argument("--config", default="configs/h36m.py",
                      help="config file whose data/train/eval blocks are stored with the weights")
  parser.add_argument("--num-heads", type=int, default=8)
  parser.add_argument("--units", choices=("auto", "m", "mm"), default="auto",
                      help="unit of the checkpoint's output: Human3.6M models predict metres, the "
                           "MPI-INF-3DHP one millimetres (auto: from the config's dataset); "
                           "converted models always predict metres")
  parser.add_argument("--verbose", action="store_true", help="show tracebacks")
  args = parser.parse_args(argv)

  from poseformer_jax import checkpoint, config_lib, convert, torch_reader
  from poseformer_jax.errors import PoseFormerError

  try:
    if args.frames < 1:
      raise convert.ConversionError(f"--frames must be positive, got {args.frames}")
    base = config_lib.load_config_file(args.config)
    obj = torch_reader.load(args.input)
    units = args.units
    if units == "auto":
      units = "mm" if base.data.dataset == "mpi_inf_3dhp" else "m"
    params, config = convert.convert(obj, args.frames, num_heads=args.num_heads, base=base,
                                     path=args.input, output_scale=1e-3 if units == "mm" else 1.0)
    out = checkpoint.save_params(args.output, params, config)
  except PoseFormerError as e:
    if args.verbose:
      raise
    print(f"error: {e}", file=sys.stderr)
    return 2
  m = config.model
  print(f"converted {args.input} -> {out}\n  F={m.num_frames} f={m.kept_frames} n={m.kept_coeffs} "
        f"J={m.num_joints} C={m.embed_dim_ratio} depth={m.depth} heads={m.num_heads} "
        f"mlp_ratio={m.mlp_ratio:g} output={'mm -> m' if units == 'mm' else 'm'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
