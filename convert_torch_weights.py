"""Converts an official PoseFormerV2 PyTorch checkpoint into a poseformer-jax checkpoint.

  python convert_torch_weights.py --input 27_243_45.2.bin --frames 243 --output ckpt/243_27_27
  python convert_torch_weights.py --input no_refine_39_2758.pth --frames 81 \
      --config configs/mpi_inf_3dhp.py --output ckpt/3dhp_81_9_9

PyTorch is not needed: the file is read by a restricted unpickler that never
runs code from it. The output loads with ``poseformer_jax.load_checkpoint``.
The default ``--config`` is this repository's ``configs/h36m.py``, wherever
the command runs from; a given ``--config`` path is relative to the working
directory.
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import flags

from poseformer_jax import checkpoint, cli, config_lib, convert, torch_reader
from poseformer_jax.errors import PoseFormerError

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "h36m.py")


def _flags() -> flags.FlagValues:
  fv = flags.FlagValues()
  flags.DEFINE_string("input", None, "Official .bin/.pth checkpoint.", flag_values=fv)
  flags.DEFINE_integer("frames", None, "Receptive field F the model was trained with (not stored "
                       "in the file).", flag_values=fv)
  flags.DEFINE_string("output", None, "New checkpoint directory.", flag_values=fv)
  flags.DEFINE_string("config", DEFAULT_CONFIG, "Config file whose data/train/eval blocks are "
                      "stored with the weights.", flag_values=fv)
  flags.DEFINE_integer("num-heads", 8, "Attention heads (not stored in the file).", flag_values=fv)
  flags.DEFINE_enum("units", "auto", ["auto", "m", "mm"],
                    "Unit of the checkpoint's output: Human3.6M models predict metres, the "
                    "MPI-INF-3DHP one millimetres (auto: from the config's dataset); converted "
                    "models always predict metres.", flag_values=fv)
  flags.DEFINE_bool("verbose", False, "Show tracebacks.", flag_values=fv)
  return fv


def run(input_path: str, frames: int, output: str, config: str = DEFAULT_CONFIG,
        num_heads: int = 8, units: str = "auto"):
  """Converts `input_path` and saves it to `output`; returns (checkpoint path, config, units).

  Raises `PoseFormerError` subclasses for bad files, configs or outputs.
  """
  if frames < 1:
    raise convert.ConversionError(f"--frames must be positive, got {frames}")
  base = config_lib.load_config_file(config)
  obj = torch_reader.load(input_path)
  if units == "auto":
    units = "mm" if base.data.dataset == "mpi_inf_3dhp" else "m"
  params, converted = convert.convert(obj, frames, num_heads=num_heads, base=base,
                                      path=input_path,
                                      output_scale=1e-3 if units == "mm" else 1.0)
  return checkpoint.save_params(output, params, converted), converted, units


def main(argv=None) -> int:
  """Command line (see the module docstring); `argv` without the program name."""
  fv = _flags()
  status = cli.parse_command_flags(fv, argv, __doc__, required=["input", "frames", "output"])
  if status is not None:
    return status
  try:
    out, config, units = run(fv.input, fv.frames, fv.output, fv.config, fv["num-heads"].value,
                             fv.units)
  except PoseFormerError as e:
    if fv.verbose:
      traceback.print_exc()
    return cli.fail(str(e))
  m = config.model
  print(f"converted {fv.input} -> {out}\n  F={m.num_frames} f={m.kept_frames} n={m.kept_coeffs} "
        f"J={m.num_joints} C={m.embed_dim_ratio} depth={m.depth} heads={m.num_heads} "
        f"mlp_ratio={m.mlp_ratio:g} output={'mm -> m' if units == 'mm' else 'm'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
