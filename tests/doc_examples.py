"""The shell examples of the README and the documentation, and their check against the real
command lines (used by tests/test_docs.py).

`shell_examples(page)` reads every command of a page's ```bash blocks. `check(commands)`
runs in a process of its own (``python tests/doc_examples.py`` with the commands as JSON on
stdin) and answers, for each command, the flags its command line does not know:

* ``train.py``, ``eval.py`` and modules on absl's global flags (the model publisher): the
  whole command line is parsed by absl and ml_collections as the script parses it,
  ``--config`` file and ``--config.FIELD=value`` overrides included (an unknown field or
  variant fails);
* every other command (``poseformer-jax SUBCOMMAND``, ``python -m poseformer_jax.MODULE``,
  ``python convert_torch_weights.py``, ``python benchmarks/bench_*.py``): its flags are read
  from its own ``--help`` (the flag definitions it parses with), and every ``--flag`` of the
  example must be one of them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import re
import shlex
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGUAGES = ("bash", "sh", "shell")
SEPARATORS = ("&&", "||", ";", "|")
# Scripts whose flags live in absl's global registry (parsed whole, config included).
GLOBAL_FLAG_SCRIPTS = ("train.py", "eval.py")
GLOBAL_FLAG_MODULES = ("poseformer_jax.pretrained.publish",)
HELP_FLAG = re.compile(r"^\s+--(\[no\])?([\w.-]+):", re.MULTILINE)


def shell_examples(page: Path) -> list[tuple[str, list[str]]]:
  """``(where, argv)`` of every command in the page's shell code blocks.

  Backslash continuations are joined, ``# comments`` dropped, ``&&``/``;``/``|`` split
  commands, and leading ``NAME=value`` environment settings are left out of argv.
  """
  found, block, buffer, start = [], False, "", 0
  for number, line in enumerate(page.read_text().splitlines(), 1):
    fence = line.strip()
    if fence.startswith("```"):
      block = (not block) and fence[3:].strip() in SHELL_LANGUAGES
      continue
    if not block:
      continue
    if not buffer:
      start = number
    if line.rstrip().endswith("\\"):
      buffer += line.rstrip()[:-1] + " "
      continue
    tokens, buffer = shlex.split(buffer + line, comments=True), ""
    command: list[str] = []
    for token in [*tokens, ";"]:
      if token in SEPARATORS:
        while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
          command.pop(0)
        if command:
          found.append((f"{page.name}:{start}", command))
        command = []
      else:
        command.append(token)
  return found


def classify(argv: list[str]) -> tuple[str, str, list[str]]:
  """``(kind, target, args)``: kind is 'global' (a script or module on absl's global flags),
  'command' (a command with its own flags), or the program's name for anything else."""
  if argv[0] in ("python", "python3") and len(argv) > 1:
    if argv[1] == "-m" and len(argv) > 2:
      module, rest = argv[2], argv[3:]
      if module == "poseformer_jax" and rest:
        return "command", f"poseformer-jax {rest[0]}", rest[1:]
      if module.startswith("poseformer_jax."):
        kind = "global" if module in GLOBAL_FLAG_MODULES else "command"
        return kind, module, rest
      return module, module, rest
    kind = "global" if argv[1] in GLOBAL_FLAG_SCRIPTS else "command"
    return kind, argv[1], argv[2:]
  if argv[0] == "poseformer-jax" and len(argv) > 1:
    return "command", f"poseformer-jax {argv[1]}", argv[2:]
  return argv[0], argv[0], argv[1:]


def unknown_flags(args: list[str], names: set[str], booleans: set[str]) -> list[str]:
  """The ``--flags`` of `args` that are not among `names` (``--noNAME`` for `booleans`)."""
  bad, i = [], 0
  while i < len(args):
    arg, i = args[i], i + 1
    if not arg.startswith("--") or arg == "--":
      continue
    name, equals, _ = arg[2:].partition("=")
    if name in booleans or (name.startswith("no") and name[2:] in booleans):
      continue
    if name in names:
      i += 0 if equals else 1  # "--flag value"
      continue
    bad.append(arg)
  return bad


# ---------------------------------------------------------------------------------------------
# The checks, run in a process of their own.

def _load(target: str):
  """The module behind a command target (a module name or a script path)."""
  if target.startswith("poseformer-jax "):
    from poseformer_jax import __main__ as entry
    return importlib.import_module(entry.COMMANDS[target.split()[1]])
  if target.endswith(".py"):
    path = REPO_ROOT / target
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"doc_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  return importlib.import_module(target)


def _help_flags(target: str) -> tuple[set[str], set[str]]:
  """Flag names and boolean flag names that a command's ``--help`` lists."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    status = _load(target).main(["--help"])
  if status not in (0, None):
    raise RuntimeError(f"{target} --help exited with {status}")
  found = HELP_FLAG.findall(out.getvalue())
  if not found:
    raise RuntimeError(f"{target} --help lists no flags")
  return {name for _, name in found}, {name for no, name in found if no}


def _parse_global(target: str, argvs: list[list[str]]) -> list[str | None]:
  """Parses each command line of a global-flag script as it does; None or the error."""
  from absl import flags
  module, answers = _load(target), []
  config_flag = flags.FLAGS["config"] if "config" in flags.FLAGS else None
  default = config_flag.default_as_str.strip("'") if config_flag is not None else None
  for argv in argvs:
    for name in [n for n in list(flags.FLAGS) if n.startswith("config.")]:
      delattr(flags.FLAGS, name)  # overrides are defined per command line
    flags.FLAGS.unparse_flags()
    if default and not any(a == "--config" or a.startswith("--config=") for a in argv):
      argv = [f"--config={default}", *argv]
    sys.argv = [target, *argv]  # ml_collections reads the overrides from sys.argv
    try:
      leftovers = flags.FLAGS(sys.argv)[1:]
      if config_flag is not None:
        module._CONFIG.value.model  # noqa: B018 - loads the config file, applies overrides
      answers.append(f"unexpected arguments {leftovers}" if leftovers else None)
    except Exception as e:  # noqa: BLE001 - absl and config loading raise many types
      answers.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
  return answers


def check(commands: list[dict]) -> list[str | None]:
  """For each ``{"kind", "target", "args"}``: None, or what is wrong with the command line.

  Global-flag targets must all be one script (absl's registry holds one program's flags).
  """
  answers: list[str | None] = []
  global_jobs = [c for c in commands if c["kind"] == "global"]
  if global_jobs:
    targets = {c["target"] for c in global_jobs}
    if len(targets) != 1 or len(global_jobs) != len(commands):
      raise ValueError("one global-flag script per process")
    return _parse_global(targets.pop(), [c["args"] for c in global_jobs])
  known: dict[str, tuple[set[str], set[str]]] = {}
  for c in commands:
    if c["target"] not in known:
      known[c["target"]] = _help_flags(c["target"])
    bad = unknown_flags(c["args"], *known[c["target"]])
    answers.append(f"unknown flag(s) {' '.join(bad)}" if bad else None)
  return answers


if __name__ == "__main__":
  sys.path.insert(0, str(REPO_ROOT))
  print(json.dumps(check(json.loads(sys.stdin.read()))))
