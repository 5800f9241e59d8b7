"""``poseformer-jax COMMAND [flags]`` (also ``python -m poseformer_jax COMMAND``).

Commands:
  lift     a video (or 2D keypoints) -> 3D poses, renders, npz/JSON/BVH
           (`poseformer_jax.lift_command.main`; ``poseformer-jax lift VIDEO --render out.mp4``)
  detect   a video -> 2D keypoints in the project's npz format (MediaPipe, offline)
  export   a checkpoint -> ONNX or StableHLO (`poseformer_jax.export`)
  view     a lift result (npz) -> an interactive 3D viewer, one HTML file that works offline
           (`poseformer_jax.view`; ``poseformer-jax view RESULT.npz --html out.html``)

``poseformer-jax COMMAND --help`` lists a command's flags.
"""

from __future__ import annotations

import importlib
import sys

from poseformer_jax import cli

COMMANDS = {"lift": "poseformer_jax.lift_command.main",
            "detect": "poseformer_jax.video.detect_cli",
            "export": "poseformer_jax.export", "view": "poseformer_jax.view.command"}


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in cli.HELP_ARGS:
    print(__doc__.strip())
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  if command not in COMMANDS:
    return cli.fail(f"bad command line: unknown command {command!r}; choose one of "
                    f"{', '.join(COMMANDS)} (see --help)")
  # Only the command that runs is loaded (most commands never need JAX).
  return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
  sys.exit(main())
