"""``poseformer-jax lift``: people in a video (or their 2D keypoints) to 3D, rendered and exported.

    poseformer-jax lift VIDEO --render out.mp4          # detect, fill, lift, render, export
    poseformer-jax lift --keypoints k.npz --format mediapipe33 --output out.npz \\
        [--json out.json] [--bvh out.bvh] [--video in.mp4 --render out.mp4] [--gif out.gif]
        [--contact-sheet out.png] [--html out.html] [--image-size W,H] [--stream] [--webcam]

This module is the command line (flags, one-line errors); its stages read the input
(`inputs`) and run offline (`pipeline`, several people too) or online (`online`:
``--stream``, ``--webcam``). They stand on the video building blocks
(`poseformer_jax.video`: detector, formats, renders, exports) and the lifting library
(`poseformer_jax.lifter`, `poseformer_jax.stream`), neither of which imports them.
"""

from __future__ import annotations

import sys
import types

from absl import flags

from poseformer_jax import cli
from poseformer_jax.errors import DataError, PoseFormerError
from poseformer_jax.pretrained import DEFAULT_CHECKPOINT
from poseformer_jax.video.formats import FORMATS

USAGE = """\
usage: poseformer-jax lift [INPUT] [flags]

Lift people in a video (or 2D keypoints of them) to 3D with a PoseFormerV2 checkpoint:
detect every person (MediaPipe, offline) and follow them (track ids), fill gaps, lift each,
render them side by side with the video, export npz/JSON/BVH.

  poseformer-jax lift VIDEO --render out.mp4      the whole pipeline on a video
  poseformer-jax lift VIDEO --person largest      one person (the tallest in the image)
  poseformer-jax lift --keypoints k.npz --format mediapipe33 --output out.npz [...]

INPUT is a video (.mp4, .avi, .mov, ...) or a keypoint file (same as --keypoints). Outputs
are never overwritten unless --overwrite is given, and are written only when every stage
has succeeded. With a video, --output/--json/--bvh/--save-keypoints default to files named
after --output or --render (else <video name>_3d.* in the current folder). With several
people (--person all, the default for a video or a file with track ids) the npz and JSON
are keyed by track (track_ids, track_<id>_poses_3d, ...) and --bvh writes one file per
track. A joint that is never confident takes the detector's low-confidence estimate
(marked low_confidence; one warning line)."""


def _define_flags(fv: flags.FlagValues) -> None:
  s, b, i, f = flags.DEFINE_string, flags.DEFINE_boolean, flags.DEFINE_integer, flags.DEFINE_float
  s("keypoints", None, "keypoint file (.npz/.json), or a folder of OpenPose JSON files",
    flag_values=fv)
  flags.DEFINE_enum("format", None, FORMATS, "layout of the keypoints (default: the layout "
                    "an npz file declares)", flag_values=fv)
  s("checkpoint", DEFAULT_CHECKPOINT, "checkpoint directory or pretrained:NAME", flag_values=fv)
  s("output", None, "3D poses, 2D input, filled mask, fps, joint names (npz)", flag_values=fv)
  s("json", None, "the same as JSON", flag_values=fv)
  s("bvh", None, "BVH skeleton animation (Blender: File > Import > Motion Capture)",
    flag_values=fv)
  s("save-keypoints", None, "where detected 2D keypoints go (project npz format)",
    flag_values=fv)
  s("video", None, "the input video under the 2D skeleton (also image size and fps)",
    flag_values=fv)
  s("render", None, "side-by-side video (.mp4 or .gif)", flag_values=fv)
  s("gif", None, "side-by-side animated GIF (half size)", flag_values=fv)
  s("contact-sheet", None, "PNG grid of 6 frames", flag_values=fv)
  s("html", None, "interactive 3D viewer: one HTML file that works offline "
    "(poseformer_jax.view)", flag_values=fv)
  s("image-size", None, "image size W,H in pixels (if the keypoint file has none)",
    flag_values=fv)
  f("fps", None, "frame rate (default: keypoint file, video, else 25)", flag_values=fv)
  f("min-score", None, "confidence below which a joint counts as missing (a joint never "
    "above it takes the detector's low-confidence estimate)", flag_values=fv)
  f("focal", None, "the camera's focal length in pixels, for the root trajectory (absolute "
    "depth scales with it)", flag_values=fv)
  f("fov", None, "or its horizontal field of view in degrees (default: 60, with a warning)",
    flag_values=fv)
  f("height", None, "the person's height in metres: places them at the right distance "
    "(the model assumes 1.70 m)", flag_values=fv)
  i("batch-size", 1024, "windows per forward pass", flag_values=fv)
  i("chunk-size", None, "lift in chunks of this many frames (same result)", flag_values=fv)
  i("max-frames", None, "use only the first N frames", flag_values=fv)
  s("person", "all", "who to lift when there are track ids: all (outputs keyed by track), "
    "largest (the tallest in the image) or a track id (one person's outputs)", flag_values=fv)
  i("min-track-frames", 3, "with --person all, leave out people found in fewer frames",
    flag_values=fv)
  s("track", None, "the same as --person ID", flag_values=fv)
  b("sequential", False, "with a video: run the stages one after the other (detect, lift, "
    "render) instead of overlapped; the same files, later", flag_values=fv)
  b("stream", False, "online lifting: feed frames one at a time (poseformer_jax.stream)",
    flag_values=fv)
  b("webcam", False, "stream from a camera (with --camera)", flag_values=fv)
  i("latency", None, "with --stream/--webcam: frames of future context per pose, 0 to "
    "(F-1)/2 (default (F-1)/2: the offline result; fewer answer sooner, less accurately)",
    flag_values=fv)
  i("camera", 0, "camera index for --webcam", flag_values=fv)
  for name, text in (("no-flip", "disable test-time flip averaging"),
                     ("no-progress", "no progress bars"),
                     ("no-trajectory", "root-relative poses only, even with a trajectory model"),
                     ("overwrite", "replace existing output files"),
                     ("verbose", "full tracebacks on errors")):
    b(name, False, text, flag_values=fv)


def parse(argv) -> types.SimpleNamespace:
  """Command-line arguments (after the program name) -> options; raises on a bad line."""
  fv = flags.FlagValues()
  _define_flags(fv)
  rest = fv(["lift", *argv])[1:]
  opts = types.SimpleNamespace(**{name.replace("-", "_"): fv[name].value for name in fv})
  if len(rest) > 1:
    raise DataError(f"bad command line: one INPUT expected, got {' '.join(rest)}")
  opts.input = rest[0] if rest else None
  if opts.input is not None and opts.keypoints is not None:
    raise DataError("bad command line: give INPUT or --keypoints, not both")
  opts.image_size = _parse_size(opts.image_size)
  if opts.focal is not None and opts.fov is not None:
    raise DataError("bad command line: give --focal or --fov, not both")
  for name, low, high in (("focal", 0.0, float("inf")), ("fov", 1.0, 170.0),
                          ("height", 0.3, 3.0)):
    value = getattr(opts, name)
    if value is not None and not low < value <= high:
      raise DataError(f"--{name} must be in ({low:g}, {high:g}], got {value:g}")
  if opts.latency is not None and not (opts.stream or opts.webcam):
    raise DataError("--latency is for online lifting (--stream or --webcam)")
  if opts.sequential and (opts.stream or opts.webcam):
    raise DataError("--sequential is for offline lifting; --stream and --webcam are online")
  for name in ("batch_size", "chunk_size", "max_frames", "min_track_frames"):
    value = getattr(opts, name)
    if value is not None and value < 1:
      raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
  return opts


def _parse_size(text):
  if text is None:
    return None
  parts = text.replace("x", ",").split(",")
  try:
    w, h = (int(p) for p in parts)
  except ValueError:
    raise DataError(f"--image-size must be W,H (pixels), got {text!r}") from None
  return (w, h)


def run(opts) -> int:
  """The command's work on parsed options (`parse`). Returns the exit status."""
  # Imported here, not at the top: the stages load JAX (seconds), and --help and bad
  # command lines answer before that.
  from poseformer_jax.lift_command import pipeline
  return pipeline.run(opts)


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if any(a in cli.HELP_ARGS for a in argv):
    fv = flags.FlagValues()
    _define_flags(fv)
    print(f"{USAGE}\n\nflags:\n{fv.get_help(include_special_flags=False)}")
    return 0
  try:
    opts = parse(argv)
  except (flags.Error, PoseFormerError) as e:
    if cli.wants_verbose(argv):
      raise
    return cli.fail(cli.describe_error(e) if isinstance(e, PoseFormerError)
                    else f"bad command line: {str(e).splitlines()[0]}")
  try:
    return run(opts)
  except (PoseFormerError, OSError) as e:
    if opts.verbose:
      raise
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    return cli.fail(message)


if __name__ == "__main__":
  sys.exit(main())
