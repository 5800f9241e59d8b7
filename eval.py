"""Evaluates a checkpoint with the standard protocol and prints the per-action table.

    python eval.py --config=configs/h36m.py:243_27_27 --checkpoint=DIR [--output=results.json]
    python eval.py --config=configs/h36m_trajectory.py --trajectory_baseline=pinhole

The model architecture comes from the checkpoint; the config supplies the data
and the protocol, and any field can be overridden, e.g.
``--config.eval.noise_std=5`` or ``--config.eval.per_subject=True``.
The logic lives in `poseformer_jax.evaluation.run_eval` (checkpoint + test split ->
`evaluation.Evaluator`).
"""

from __future__ import annotations

import os
import sys
import traceback

from absl import flags
from absl import logging
from ml_collections import config_flags

from poseformer_jax import cli
from poseformer_jax import evaluation
from poseformer_jax import host_memory
from poseformer_jax.errors import PoseFormerError

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "h36m.py"),
    "Config file (data and evaluation settings), e.g. configs/h36m.py:243_27_27.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Checkpoint directory (training workdir, manager dir or step dir).")
_OUTPUT = flags.DEFINE_string("output", None, "Write the results as JSON here.")
_BASELINE = flags.DEFINE_enum(
    "trajectory_baseline", None, ["pinhole"],
    "Score a no-learning root trajectory instead of a checkpoint: 'pinhole' (depth from the "
    "2D skeleton's size, calibrated on config.data.subjects_train).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show tracebacks of errors.")


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  config, status = cli.config_or_exit(argv, _CONFIG)
  if config is None:
    return status
  if not _CHECKPOINT.value and not _BASELINE.value:
    return cli.fail("--checkpoint is required")
  if not _VERBOSE.value:
    logging.set_verbosity(logging.WARNING)  # orbax/jax INFO chatter
  try:
    host_memory.configure(config.host_memory)  # before JAX starts its backend
    if _BASELINE.value:
      results = evaluation.run_baseline(config, _BASELINE.value, output=_OUTPUT.value)
    else:
      results = evaluation.run_eval(config, _CHECKPOINT.value, output=_OUTPUT.value)
  except PoseFormerError as e:
    if _VERBOSE.value:
      traceback.print_exc()
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(evaluation.format_table(results))
  if _OUTPUT.value:
    print(f"wrote {_OUTPUT.value}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
