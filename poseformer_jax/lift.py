"""Lift a whole clip of 2D keypoints to 3D: `lift`, `Lifter`, and the lifting command.

Function::

    from poseformer_jax import lift
    poses = lift(keypoints_2d, image_size=(1280, 720), checkpoint="pretrained:h36m-81_1_3-mix")
    # many clips: a Lifter loads the checkpoint once and owns its compiled forward pass
    from poseformer_jax.lift import Lifter
    lifter = Lifter("ckpt/")
    poses = lifter(keypoints_2d, (1280, 720))                                  # (T, 17, 3)

Command (also ``poseformer-jax lift`` and ``python -m poseformer_jax lift``)::

    python -m poseformer_jax.lift VIDEO --render out.mp4          # detect, fill, lift, render, export
    python -m poseformer_jax.lift --keypoints k.npz --format mediapipe33 --output out.npz \\
        [--json out.json] [--bvh out.bvh] [--video in.mp4 --render out.mp4] [--gif out.gif]
        [--contact-sheet out.png] [--html out.html] [--image-size W,H] [--stream] [--webcam] [--max-frames N]

What happens: keypoints are read (or detected in the video, `poseformer_jax.video.detect`)
and mapped to the H36M 17-joint layout (`poseformer_jax.video.formats`), missing joints are
interpolated along time (`poseformer_jax.video.gaps`), pixels are normalised by the image
size (``x / w * 2 - [1, h / w]``), and every frame is lifted by the project's one inference
driver (`poseformer_jax.inference.Predictor`): an F-frame window centred on it (edge-padded
at the clip's ends), test-time flip averaging, batched jitted forward passes. Output:
camera-space metres (x right, y down, z forward), root (pelvis) relative. The command's
stages are in `poseformer_jax.video.pipeline`.

Only numpy and absl are imported at module level, so ``import poseformer_jax`` stays light.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
from absl import flags

from poseformer_jax import cli

DEFAULT_CHECKPOINT = "pretrained:h36m-81_1_3-mix"


class Lifter:
  """A checkpoint loaded once, with its compiled forward passes: call it on clips.

  Args:
    checkpoint: a checkpoint directory, ``pretrained:NAME``, or the
      ``(model, params, config)`` triple from `poseformer_jax.load_checkpoint`.
    batch_size: windows per forward pass (capped per clip at its length
      rounded up to 16, so short clips do not compute padding).
    flip: test-time flip averaging (as the published results).
  """

  def __init__(self, checkpoint=DEFAULT_CHECKPOINT, *, batch_size: int = 1024,
               flip: bool = True):
    from poseformer_jax.errors import DataError
    if int(batch_size) != batch_size or batch_size < 1:
      raise DataError(f"batch_size must be a positive integer, got {batch_size}")
    self.model, self.params, self.config = _resolve_checkpoint(checkpoint)
    self.batch_size, self.flip = int(batch_size), bool(flip)
    self.num_frames = int(self.model.num_frames)
    self.pad = (self.num_frames - 1) // 2
    self._predictors: dict = {}  # batch size -> Predictor (each compiles once)

  @property
  def variant(self) -> str:
    return str(self.config.get("variant", "?")) if hasattr(self.config, "get") else "?"

  def predictor(self, batch_size: int | None = None):
    """The `Predictor` of these weights for `batch_size` windows per pass (kept for reuse)."""
    from poseformer_jax.data import skeleton
    from poseformer_jax.inference import Predictor
    b = int(batch_size or self.batch_size)
    if b not in self._predictors:
      self._predictors[b] = Predictor(
          self.model, self.params, batch_size=b, flip=self.flip,
          kps_left=skeleton.JOINTS_LEFT, kps_right=skeleton.JOINTS_RIGHT,
          joints_left=skeleton.JOINTS_LEFT, joints_right=skeleton.JOINTS_RIGHT)
    return self._predictors[b]

  def __call__(self, keypoints_2d, image_size, *, chunk_size: int | None = None,
               progress=None) -> np.ndarray:
    """(T, 17, 2) H36M-17 pixels (NaN = missing, interpolated first) -> (T, 17, 3).

    `progress`: optional callback with the number of frames done. See `lift`.
    """
    from poseformer_jax.data import cameras
    x, (w, h) = _check_keypoints(keypoints_2d, image_size, chunk_size)
    t = x.shape[0]
    span = t if chunk_size is None else min(t, int(chunk_size) + 2 * self.pad)
    predictor = self.predictor(min(self.batch_size, -(-span // 16) * 16))
    xn = cameras.normalize_screen(x, w, h).astype(np.float32)
    if chunk_size is None:
      return predictor.predict_sequences([xn], progress=progress)[0]
    out = np.empty((t, 17, 3), np.float32)
    for start in range(0, t, int(chunk_size)):
      stop = min(t, start + int(chunk_size))
      lo, hi = max(0, start - self.pad), min(t, stop + self.pad)
      out[start:stop] = predictor.predict_sequences([xn[lo:hi]])[0][start - lo:stop - lo]
      if progress is not None:
        progress(stop)
    return out


def lift(keypoints_2d, image_size, checkpoint, *, batch_size: int = 1024, flip: bool = True,
         chunk_size: int | None = None) -> np.ndarray:
  """3D poses of every frame of a clip.

  Args:
    keypoints_2d: (T, 17, 2) pixels in the H36M-17 layout (see
      `poseformer_jax.video.formats`). NaN marks missing joints; they are
      interpolated along time first (`poseformer_jax.video.gaps.fill_gaps`).
      Any T >= 1 works, also shorter than the model's receptive field (the
      windows are edge-padded).
    image_size: (width, height) in pixels of the image the keypoints refer to.
    checkpoint: a checkpoint directory, ``pretrained:NAME``, the ``(model,
      params, config)`` triple from `poseformer_jax.load_checkpoint`, or a
      `Lifter` (for many clips: it keeps its compiled forward passes).
    batch_size: windows per forward pass (capped at the clip length rounded up
      to 16, so short clips do not compute padding).
    flip: test-time flip averaging (as the published results).
    chunk_size: if set, lift the clip in pieces of this many frames, each with
      ``pad = (F - 1) // 2`` frames of context on both sides (bounded memory
      for long clips). Every frame then sees exactly the window it sees when
      the whole clip is lifted at once, so the result is the same.
  Returns:
    (T, 17, 3) float32, camera-space metres, root-relative (pelvis = 0).
  Raises:
    DataError: bad shapes, non-positive image size, infinite values, or no
      usable frames. CheckpointError: unreadable checkpoint.
  """
  from poseformer_jax.errors import DataError
  _check_keypoints(keypoints_2d, image_size, chunk_size)
  if int(batch_size) != batch_size or batch_size < 1:
    raise DataError(f"batch_size must be a positive integer, got {batch_size}")
  lifter = checkpoint if isinstance(checkpoint, Lifter) else Lifter(
      checkpoint, batch_size=batch_size, flip=flip)
  return lifter(keypoints_2d, image_size, chunk_size=chunk_size)


def _check_keypoints(keypoints_2d, image_size, chunk_size):
  """Validated, gap-filled (T, 17, 2) float64 pixels and (w, h)."""
  from poseformer_jax.errors import DataError
  from poseformer_jax.video.formats import H36M_JOINT_NAMES
  from poseformer_jax.video.gaps import fill_gaps
  x = np.asarray(keypoints_2d, np.float64) if _is_numeric(keypoints_2d) else None
  if x is None or x.ndim != 3 or x.shape[1:] != (17, 2) or x.shape[0] < 1:
    shape = getattr(x, "shape", None) if x is not None else type(keypoints_2d).__name__
    raise DataError(f"keypoints_2d must have shape (T, 17, 2) with T >= 1 (H36M-17 pixels), "
                    f"got {shape}")
  size = check_image_size(image_size)
  if np.isnan(x).any():
    x, _ = fill_gaps(x, joint_names=H36M_JOINT_NAMES)
  if not np.isfinite(x).all():
    raise DataError("keypoints_2d contain infinite values")
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    raise DataError(f"chunk_size must be a positive integer, got {chunk_size}")
  return x, size


def _is_numeric(a) -> bool:
  try:
    np.asarray(a, np.float64)
    return True
  except (TypeError, ValueError):
    return False


def check_image_size(image_size) -> tuple[float, float]:
  from poseformer_jax.errors import DataError
  try:
    w, h = (float(v) for v in image_size)
  except (TypeError, ValueError):
    raise DataError(f"image_size must be (width, height), got {image_size!r}") from None
  if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
    raise DataError(f"image size must be positive, got {image_size!r} (width, height)")
  return w, h


def _resolve_checkpoint(checkpoint):
  from poseformer_jax.errors import DataError
  if isinstance(checkpoint, (str, os.PathLike)):
    from poseformer_jax.checkpoint import load_checkpoint
    checkpoint = load_checkpoint(checkpoint)
  if isinstance(checkpoint, (tuple, list)) and len(checkpoint) == 3:
    model = checkpoint[0]
    if int(getattr(model, "num_joints", 17)) != 17:
      raise DataError(f"lift needs a 17-joint model, the checkpoint has {model.num_joints}")
    return tuple(checkpoint)
  raise DataError("checkpoint must be a directory, pretrained:NAME or the (model, params, "
                  f"config) triple from load_checkpoint, got {type(checkpoint).__name__}")


# --- command line -------------------------------------------------------------------------------

USAGE = """\
usage: poseformer-jax lift [INPUT] [flags]

Lift people in a video (or 2D keypoints of one) to 3D with a PoseFormerV2 checkpoint: detect
(MediaPipe, offline), fill gaps, lift, render side by side, export npz/JSON/BVH.

  poseformer-jax lift VIDEO --render out.mp4      the whole pipeline on a video
  poseformer-jax lift --keypoints k.npz --format mediapipe33 --output out.npz [...]

INPUT is a video (.mp4, .avi, .mov, ...) or a keypoint file (same as --keypoints). Outputs
are never overwritten unless --overwrite is given, and are written only when every stage
has succeeded. With a video, --output/--json/--bvh/--save-keypoints default to files named
after --output or --render (else <video name>_3d.* in the current folder)."""


def _define_flags(fv: flags.FlagValues) -> None:
  from poseformer_jax.video.formats import FORMATS
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
  f("min-score", None, "confidence below which a joint counts as missing", flag_values=fv)
  i("batch-size", 1024, "windows per forward pass", flag_values=fv)
  i("chunk-size", None, "lift in chunks of this many frames (same result)", flag_values=fv)
  i("max-frames", None, "use only the first N frames", flag_values=fv)
  i("min-track-frames", 3, "drop tracks shorter than this (several people)", flag_values=fv)
  s("track", None, "lift only this track id of a multi-person file", flag_values=fv)
  b("stream", False, "online lifting: feed frames one at a time (poseformer_jax.stream)",
    flag_values=fv)
  b("webcam", False, "stream from a camera (with --camera)", flag_values=fv)
  i("camera", 0, "camera index for --webcam", flag_values=fv)
  for name, text in (("no-flip", "disable test-time flip averaging"),
                     ("no-progress", "no progress bars"),
                     ("overwrite", "replace existing output files"),
                     ("verbose", "full tracebacks on errors")):
    b(name, False, text, flag_values=fv)


def parse(argv) -> types.SimpleNamespace:
  """Command-line arguments (after the program name) -> options; raises on a bad line."""
  from poseformer_jax.errors import DataError
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
  for name in ("batch_size", "chunk_size", "max_frames", "min_track_frames"):
    value = getattr(opts, name)
    if value is not None and value < 1:
      raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
  return opts


def _parse_size(text):
  from poseformer_jax.errors import DataError
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
  from poseformer_jax.video import pipeline
  return pipeline.run(opts)


def main(argv=None) -> int:
  from poseformer_jax.errors import PoseFormerError
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
