"""The documentation: the site builds with ``mkdocs build --strict``, the README stays a front
page, the project's files speak of the project only, and every shell and Python example of
the README and the docs matches the code (flags parsed against the real command lines)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import doc_examples
from conftest import REPO_ROOT, require

DOCS = REPO_ROOT / "docs"
PAGES = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md")), REPO_ROOT / "benchmarks" / "README.md",
         REPO_ROOT / "examples" / "README.md", REPO_ROOT / "tools" / "three" / "README.md"]
README_MAX_LINES = 300
# Words and phrases that describe how the project was made rather than the project (written
# in two parts here, so that this file passes its own check).
FORBIDDEN = {r"\bsess" r"ion\b": "sess" "ion", r"\bissues? #?\d+": "issue N",
             r"\ble" r"nt\b": "le" "nt"}
# Programs the examples may run besides the project's commands, each with what to check.
OTHER_PROGRAMS = ("cd", "npm", "./build.sh", "tensorboard", "mkdocs", "pytest", "git")


def _examples():
  return [(where, argv) for page in PAGES for where, argv in doc_examples.shell_examples(page)]


def test_site_builds_strictly(tmp_path):
  """The whole site, API reference and model cards included, with warnings as errors:
  a broken link, anchor or docstring reference fails."""
  for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
    require(module, hint="pip install -e '.[docs]'")
  site = tmp_path / "site"
  env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a notice of mkdocs-material about MkDocs 2
  run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                        "--site-dir", str(site)], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
  assert run.returncode == 0, run.stderr[-4000:]
  pretrained = (site / "pretrained.html").read_text()
  from poseformer_jax import pretrained as shipped
  for name in shipped.available():
    assert f"pretrained:{name}" in pretrained  # the table made from the cards
    assert (site / "models" / f"{name}.html").exists()
  assert "StreamingLifter" in (site / "api.html").read_text()
  assert (site / "changelog.html").exists()


def test_readme_is_a_front_page():
  lines = (REPO_ROOT / "README.md").read_text().splitlines()
  assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
  assert any("docs/images/viewer.png" in line for line in lines)


def test_readme_links_exist():
  """Relative links of the README (mkdocs checks the docs' own) point at files that exist."""
  text = (REPO_ROOT / "README.md").read_text()
  targets = re.findall(r"\]\(([^)\s]+)\)", text)
  assert targets
  for target in targets:
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
      continue
    assert (REPO_ROOT / target.split("#")[0]).exists(), target


def test_readme_pretrained_table_is_the_cards():
  """The README's table of shipped models is made from the cards, never copied by hand:
  after a card changes, ``python tools/pretrained_table.py --write`` refreshes it."""
  sys.path.insert(0, str(REPO_ROOT / "tools"))
  import pretrained_table
  text = (REPO_ROOT / "README.md").read_text()
  assert pretrained_table.readme_table() in text, "run: python tools/pretrained_table.py --write"


def _tracked_files() -> list[Path]:
  try:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  return [REPO_ROOT / n for n in names if n]


def test_the_project_speaks_of_itself_only():
  """No file (code, comments, docs, model cards, tests, assets) speaks of how the project was
  made (`FORBIDDEN`: numbered tracker issues and two words). Dates and machines instead."""
  offences = []
  for path in _tracked_files():
    if not path.is_file():
      continue
    data = path.read_bytes()
    if b"\0" in data:
      continue
    text = data.decode("utf-8", errors="replace")
    for pattern, label in FORBIDDEN.items():
      for match in re.finditer(pattern, text, flags=re.IGNORECASE):
        line = text.count("\n", 0, match.start()) + 1
        offences.append(f"{path.relative_to(REPO_ROOT)}:{line}: {label!r}")
  assert not offences, "\n".join(offences[:40])


def test_examples_are_found():
  """The parser sees the examples (so the checks below cannot pass on nothing)."""
  examples = _examples()
  kinds = {doc_examples.classify(argv)[1] for _, argv in examples}
  for target in ("train.py", "eval.py", "convert_torch_weights.py", "poseformer-jax lift",
                 "poseformer-jax view", "poseformer-jax export", "make"):
    assert target in kinds, target


def test_examples_run_known_programs():
  """Each shell example runs a project command, make, pip, or a listed program."""
  makefile = (REPO_ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
  extras = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
               ["project"]["optional-dependencies"])
  for where, argv in _examples():
    kind, target, args = doc_examples.classify(argv)
    if kind in ("global", "command"):
      continue
    if kind == "make":
      assert set(args) <= targets, f"{where}: make {args}: no such target"
    elif kind == "pip" or (kind == "pip3"):
      for arg in args:
        wanted = re.fullmatch(r"\.\[([\w,-]+)\]", arg)
        if wanted:
          assert set(wanted.group(1).split(",")) <= extras, f"{where}: {arg}: no such extra"
    else:
      assert kind in OTHER_PROGRAMS, f"{where}: {' '.join(argv)}: unknown program {kind}"


def _check(commands: list[dict]) -> list:
  run = subprocess.run([sys.executable, str(Path(doc_examples.__file__))],
                       input=json.dumps(commands), cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-4000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


def test_example_flags_parse():
  """Every project command of the examples parses against the real flag definitions: an
  unknown flag, config field or variant fails (train.py/eval.py parse whole lines)."""
  jobs: dict[str, list] = {}
  for where, argv in _examples():
    kind, target, args = doc_examples.classify(argv)
    if kind in ("global", "command"):
      key = target if kind == "global" else "commands"
      jobs.setdefault(key, []).append((where, {"kind": kind, "target": target, "args": args}))
  assert jobs
  problems = []
  for batch in jobs.values():
    for (where, command), answer in zip(batch, _check([c for _, c in batch])):
      if answer:
        problems.append(f"{where}: {command['target']} {' '.join(command['args'])}: {answer}")
  assert not problems, "\n".join(problems)


def test_unknown_flags_are_caught():
  """The checker itself fails on a wrong flag, config field and variant."""
  answers = _check([{"kind": "global", "target": "eval.py", "args": a} for a in
                    (["--config=configs/h36m.py:81_1_3", "--checkpoint=x"],
                     ["--config=configs/h36m.py:81_1_3", "--config.eval.no_such_field=1"],
                     ["--config=configs/h36m.py:81_2_7"], ["--no_such_flag=1"])])
  assert answers[0] is None and all(answers[1:]), answers
  answers = _check([{"kind": "command", "target": "poseformer-jax lift", "args": a} for a in
                    (["x.mp4", "--render", "y.mp4", "--no-flip"], ["x.mp4", "--rendr=y.mp4"])])
  assert answers[0] is None and "--rendr" in answers[1], answers


def test_python_examples_compile_and_import():
  """Every ```python block compiles, and what it imports from the package exists."""
  for page in PAGES:
    for number, code in _python_blocks(page):
      compile(code, f"{page.name}:{number}", "exec")
      for module, names in re.findall(r"^from (poseformer_jax[\w.]*) import ([\w, ]+)", code,
                                      flags=re.MULTILINE):
        imported = __import__(module, fromlist=["_"])
        for name in (n.strip() for n in names.split(",")):
          assert hasattr(imported, name) or _is_module(f"{module}.{name}"), \
              f"{page.name}:{number}: {module}.{name}"


def _python_blocks(page: Path):
  block, lines, start = False, [], 0
  for number, line in enumerate(page.read_text().splitlines(), 1):
    if line.strip().startswith("```"):
      if block:
        yield start, "\n".join(lines)
        block = False
      elif line.strip()[3:].strip() == "python":
        block, lines, start = True, [], number
    elif block:
      lines.append(line)


def _is_module(name: str) -> bool:
  import importlib.util
  return importlib.util.find_spec(name) is not None
