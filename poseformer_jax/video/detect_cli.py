"""``poseformer-jax detect VIDEO --output k_mediapipe33.npz``: 2D keypoints of a video, offline.

Runs `poseformer_jax.video.detect.MediaPipeDetector` over every frame and writes the
project's keypoint npz (`poseformer_jax.video.formats.save_keypoints`; read it back with
``poseformer-jax lift --keypoints FILE``). Needs the ``detect`` extra
(``make install-detect``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import flags

from poseformer_jax import cli
from poseformer_jax.errors import PoseFormerError
from poseformer_jax.video import detect, ffmpeg, formats

USAGE = "usage: poseformer-jax detect VIDEO [--output FILE] [--max-frames N] [--overwrite]"


def _flags() -> flags.FlagValues:
  fv = flags.FlagValues()
  flags.DEFINE_string("output", None, "keypoint npz (default: <video name>_mediapipe33.npz "
                      "in the current folder)", flag_values=fv)
  flags.DEFINE_integer("max-frames", None, "only the first N frames", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_boolean("overwrite", False, "replace an existing output", flag_values=fv)
  flags.DEFINE_boolean("no-progress", False, "no progress bar", flag_values=fv)
  flags.DEFINE_boolean("verbose", False, "full tracebacks on errors", flag_values=fv)
  return fv


def run(video: Path, output: Path, *, max_frames=None, overwrite=False, progress=True) -> Path:
  out = cli.Outputs(overwrite)
  out.add("output", output, (".npz",))
  if not ffmpeg.is_video(video):
    raise PoseFormerError(f"{video}: not a video file ({', '.join(ffmpeg.VIDEO_SUFFIXES)})")
  det = detect.detect_video(video, max_frames=max_frames, progress=progress)
  t, found = len(det["keypoints"]), int(det["detected"].sum())
  if not found:
    raise PoseFormerError(f"{video}: no person in any of the {t} frames")
  try:
    formats.save_keypoints(out.tmp("output"), det["keypoints"], det["scores"], det["detected"],
                           width=det["width"], height=det["height"], fps=det["fps"],
                           layout=det["layout"])
    out.commit()
  except BaseException:
    out.discard()
    raise
  print(f"{video}: person found in {found}/{t} frames, {t / det['seconds']:.1f} frames/s")
  return output


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  fv = _flags()
  if any(a in cli.HELP_ARGS for a in argv):
    print(f"{USAGE}\n\n{__doc__.strip()}\n\nflags:\n{fv.get_help(include_special_flags=False)}")
    return 0
  try:
    rest = fv(["detect", *argv])[1:]
    if len(rest) != 1:
      raise PoseFormerError(f"bad command line: one VIDEO expected ({USAGE})")
  except (flags.Error, PoseFormerError) as e:
    if cli.wants_verbose(argv):
      raise
    return cli.fail(cli.describe_error(e) if isinstance(e, PoseFormerError)
                    else f"bad command line: {str(e).splitlines()[0]}")
  video = Path(rest[0])
  output = Path(fv["output"].value or f"{video.stem}_mediapipe33.npz")
  try:
    path = run(video, output, max_frames=fv["max-frames"].value,
               overwrite=fv["overwrite"].value, progress=not fv["no-progress"].value)
  except (PoseFormerError, OSError) as e:
    if fv["verbose"].value:
      raise
    return cli.fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
