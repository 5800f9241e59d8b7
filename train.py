"""Trains PoseFormerV2 (data parallel over every device) with checkpoints and exact resume.

  python train.py --config=configs/h36m.py:81_3_3 --workdir=runs/81_3_3
  python train.py --config=configs/default.py --workdir=runs/demo      # small, synthetic data, CPU
  python train.py --config=configs/h36m.py:27_3_3 --workdir=runs/x --config.train.batch_size=256

Any config field can be overridden with ``--config.<path>=<value>``. Running
the same command again on the same workdir resumes where it stopped (SIGTERM
or Ctrl-C save a checkpoint first). Multi-process: add
``--config.train.distributed=True`` (cluster environments are detected by JAX)
or give ``--config.train.coordinator_address=host:port
--config.train.num_processes=N --config.train.process_id=i``.

Exit status: 0 when training completed or stopped with a checkpoint saved,
2 for a bad config/data/workdir or a non-finite loss (one-line message; the
traceback only with --verbose), 130 when interrupted twice.
"""

from __future__ import annotations

import os
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from poseformer_jax import cli
from poseformer_jax import host_memory
from poseformer_jax import parallel
from poseformer_jax import train_lib
from poseformer_jax.errors import PoseFormerError

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Config file (path.py[:variant]); fields overridable with "
    "--config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (checkpoints, logs); "
                               "an existing run in it is resumed.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show tracebacks and library logs.")


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  config, status = cli.config_or_exit(argv, _CONFIG)
  if config is None:
    return status
  if not _WORKDIR.value:
    return cli.fail("--workdir is required")

  logging.set_verbosity(logging.INFO if _VERBOSE.value else logging.ERROR)
  if not _VERBOSE.value:  # TensorFlow (tf.data backend) start-up chatter
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    # Process-wide set-up before anything touches a device (as big_vision's main does).
    # TensorFlow, optional, is kept off the GPUs where the tf.data backend imports it
    # (`data.pipeline`): importing it here would cost every run, failing ones included,
    # seconds and two lines of stderr.
    host_memory.configure(config.host_memory)  # before JAX starts its backend
    parallel.maybe_initialize_distributed(config.train)
    result = train_lib.train(config, _WORKDIR.value)
  except PoseFormerError as e:
    if _VERBOSE.value:
      raise
    return cli.fail(str(e))
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  return 0 if result.status in ("completed", "preempted", "stopped") else 1


if __name__ == "__main__":
  sys.exit(main())
