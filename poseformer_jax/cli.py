"""Shared command-line plumbing: flag parsing with one-line errors, output files written
whole or not at all (`Outputs`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from poseformer_jax.errors import DataError, PoseFormerError


def describe_error(error: BaseException) -> str:
  """One line for a command-line/config error: our own error if one is in the chain."""
  chain, e = [], error
  while e is not None and e not in chain:
    chain.append(e)
    e = e.__cause__ or e.__context__
  for e in reversed(chain):
    if isinstance(e, PoseFormerError):
      return str(e)
  lines = [ln.strip() for ln in str(chain[-1]).splitlines() if ln.strip()]
  text = lines[-1] if lines else type(chain[-1]).__name__
  if isinstance(chain[-1], KeyError):
    text = f"unknown config field {text}"
  return f"bad command line: {text}"


def fail(message: str) -> int:
  """Prints ``error: message`` to stderr; returns the exit status 2."""
  print(f"error: {message}", file=sys.stderr)
  return 2


def wants_verbose(argv) -> bool:
  return any(a in ("--verbose", "-verbose", "--verbose=true", "--verbose=True") for a in argv)


def parse_flags(argv, config_flag):
  """Parses absl flags and loads the ``--config`` file; raises on any problem.

  Returns the loaded config. config_flags loads the file lazily, so it is
  touched here to surface a bad file or an unknown variant at parse time.
  """
  leftovers = flags.FLAGS(argv)[1:]
  if leftovers:
    raise ValueError(f"unexpected arguments: {' '.join(leftovers)}")
  config = config_flag.value
  config.model  # noqa: B018 - forces the config file to load
  return config


def config_or_exit(argv, config_flag):
  """`parse_flags` for an entry point: ``(config, None)``, or ``(None, 2)`` after printing
  the one-line error (the traceback is raised instead with ``--verbose``)."""
  try:
    return parse_flags(argv, config_flag), None
  except Exception as e:  # noqa: BLE001 - flag/config parsing raises many types
    if wants_verbose(argv):
      raise
    return None, fail(describe_error(e))


# ---------------------------------------------------------------------------
# Commands with their own flags (converter, data preparation, FLOPs, benchmarks).

HELP_ARGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def parse_command_flags(flag_values: flags.FlagValues, argv, doc: str,
                        required=()) -> int | None:
  """Parses a command's own absl flags; None when parsed, else the exit status to return.

  `flag_values` is a fresh ``flags.FlagValues()`` holding only this command's
  flags, so commands that import one another never clash in absl's global
  registry. `argv`: the arguments after the program name (``sys.argv[1:]``
  when None). ``-h``/``--help`` prints `doc` and the flags (status 0). A bad
  command line (unknown flag, unparsable value, a missing `required` flag,
  stray arguments) prints one ``error:`` line (status 2), or raises with
  ``--verbose``.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  if any(a in HELP_ARGS for a in argv):
    print(f"{doc.strip()}\n\nflags:\n{flag_values.get_help(include_special_flags=False)}\n")
    return 0
  try:
    leftovers = flag_values(["command", *argv])[1:]
    if leftovers:
      raise ValueError(f"unexpected arguments: {' '.join(leftovers)}")
    missing = [f"--{name}" for name in required if flag_values[name].value is None]
    if missing:
      raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
  except Exception as e:  # noqa: BLE001 - absl raises several types for bad flags
    if wants_verbose(argv):
      raise
    if isinstance(e, flags.Error):  # names the flag: "flag --frames=abc: invalid literal ..."
      return fail(f"bad command line: {str(e).splitlines()[0]}")
    return fail(describe_error(e))
  return None


def report_written(write, error_status: int = 2) -> int:
  """Runs a command body that writes files: 0 after printing ``wrote PATH`` for each path.

  `write()` returns a path, or a dict or list of paths. A `PoseFormerError`
  prints one ``error:`` line and returns `error_status`.
  """
  try:
    written = write()
  except PoseFormerError as e:
    print(f"error: {e}", file=sys.stderr)
    return error_status
  if isinstance(written, dict):
    written = list(written.values())
  for path in written if isinstance(written, (list, tuple)) else [written]:
    print(f"wrote {path}")
  return 0


def write_command(flag_values: flags.FlagValues, argv, doc: str, write, required=("root",),
                  error_status: int = 1) -> int:
  """``main()`` of a command that writes files: parses its flags, then `write(flag_values)`.

  Returns the exit status: `parse_command_flags`'s for a bad command line,
  else `report_written`'s (``wrote PATH`` lines, or one ``error:`` line and
  `error_status`).
  """
  status = parse_command_flags(flag_values, argv, doc, required)
  if status is not None:
    return status
  return report_written(lambda: write(flag_values), error_status)


class Outputs:
  """A command's output files, checked before any work and written whole or not at all.

  `add` checks each path at once (suffix, an existing folder, not the same file
  as another output, no silent overwrite unless `overwrite`); the work writes
  to `tmp(flag)`, and `commit` renames every file into place only when all of
  it succeeded (`discard` removes the partial files after a failure).

  Args:
    overwrite: replace existing files.
    suffixes: flag -> the suffixes its path may have (default: any).
  """

  def __init__(self, overwrite: bool, suffixes: dict | None = None):
    self.overwrite = overwrite
    self.suffixes = dict(suffixes or {})
    self.paths: dict[str, Path] = {}
    self._tmp: dict[Path, Path] = {}

  def add(self, flag: str, path, suffixes=None) -> Path:
    path = Path(path)
    suffixes = suffixes or self.suffixes.get(flag, (path.suffix,))
    name = "--" + flag.replace("_", "-")
    if path.suffix.lower() not in suffixes:
      raise DataError(f"{name} {path}: must end with {' or '.join(suffixes)}")
    for other, p in self.paths.items():
      if p.resolve() == path.resolve():
        raise DataError(f"{name} {path}: same file as --{other.replace('_', '-')}")
    if path.exists() and not self.overwrite:
      raise DataError(f"{path}: already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
      raise DataError(f"{path}: folder {path.parent} does not exist")
    self.paths[flag] = path
    return path

  def tmp(self, flag: str) -> Path:
    """Where to write the output of `flag` until `commit`."""
    path = self.paths[flag]
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    self._tmp[tmp] = path
    return tmp

  def commit(self) -> list[Path]:
    for tmp, path in self._tmp.items():
      os.replace(tmp, path)
    done = list(self._tmp.values())
    self._tmp = {}
    return done

  def discard(self) -> None:
    for tmp in self._tmp:
      tmp.unlink(missing_ok=True)
    self._tmp = {}
