"""``poseformer-jax view RESULT.npz --html out.html``: the viewer page of a result written before.

The page is built completely before anything is written; an existing file is
replaced only with ``--overwrite``. Bad input (a damaged npz, another tool's
npz, an empty track, a video of another size) ends with one ``error:`` line.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from absl import flags

from poseformer_jax import cli, view
from poseformer_jax.errors import DataError, PoseFormerError

USAGE = """\
usage: poseformer-jax view RESULT.npz [--html out.html] [--video in.mp4] [flags]

Writes an interactive 3D viewer of a lift result (the npz of `poseformer-jax lift`) as one
self-contained HTML file that works offline: open it in a browser. It plays the 3D
skeleton(s) (drag to orbit, wheel to zoom), with the 2D keypoints of each frame beside it,
over the video's frames when --video is given. --html defaults to RESULT with .html."""


def _define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("html", None, "the page to write (.html; default RESULT.html)",
                      flag_values=fv)
  flags.DEFINE_string("video", None, "the input video: its frames go under the 2D keypoints",
                      flag_values=fv)
  flags.DEFINE_string("title", None, "page title (default: the result's name)", flag_values=fv)
  flags.DEFINE_boolean("overwrite", False, "replace an existing page", flag_values=fv)
  flags.DEFINE_boolean("no-progress", False, "no progress bar", flag_values=fv)
  flags.DEFINE_boolean("verbose", False, "full tracebacks on errors", flag_values=fv)


def parse(argv) -> types.SimpleNamespace:
  """Arguments after ``view`` -> options; raises on a bad command line."""
  fv = flags.FlagValues()
  _define_flags(fv)
  rest = fv(["view", *argv])[1:]
  if len(rest) != 1:
    raise DataError("bad command line: one RESULT.npz expected"
                    + (f", got {' '.join(rest)}" if rest else ""))
  opts = types.SimpleNamespace(**{name.replace("-", "_"): fv[name].value for name in fv})
  opts.result = Path(rest[0])
  opts.html = Path(opts.html) if opts.html else opts.result.with_suffix(".html")
  return opts


def check_output(path: Path, overwrite: bool) -> None:
  """A page path that may be written: .html, an existing folder, no silent overwrite."""
  if path.suffix.lower() not in (".html", ".htm"):
    raise DataError(f"--html {path}: must end with .html")
  if path.exists() and not overwrite:
    raise DataError(f"{path}: already exists (pass --overwrite to replace it)")
  if not path.parent.is_dir():
    raise DataError(f"{path}: folder {path.parent} does not exist")


def write(opts) -> Path:
  check_output(opts.html, opts.overwrite)
  return view.write_html(opts.html, opts.result, video=opts.video, title=opts.title,
                         progress=not opts.no_progress)


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
  if opts.verbose:  # errors raise with their traceback
    print(f"wrote {write(opts)}")
    return 0
  return cli.report_written(lambda: write(opts), error_status=1)


if __name__ == "__main__":
  sys.exit(main())
