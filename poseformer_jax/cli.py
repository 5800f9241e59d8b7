"""Shared command-line plumbing: flag parsing with one-line errors."""

from __future__ import annotations

import sys

from absl import flags


def describe_error(error: BaseException) -> str:
  """One line for a command-line/config error: our own error if one is in the chain."""
  from poseformer_jax.errors import PoseFormerError
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
