"""Optional dependencies in the tests: skipped on a user's machine, a failure under CI=true.

`conftest.require` / `require_executable` are the one way tests ask for torch,
tensorflow, onnx, mediapipe, a browser...; these tests check that they skip or
fail as the environment says, that no test file goes around them, that `.ci/run`
sets ``CI=true`` before the README's ``make test``, and that every module the tests
require is one that ``make install-test`` installs (else CI would fail on it).
"""

from __future__ import annotations

import re
import sys
import tomllib

import pytest

from conftest import REPO_ROOT, require, require_executable

TESTS = REPO_ROOT / "tests"

# Top-level package of a module asked for with `require` -> the distribution providing it.
DISTRIBUTIONS = {"torch": "torch", "tensorflow": "tensorflow", "tensorflow_datasets":
                 "tensorflow-datasets", "onnx": "onnx", "jax2onnx": "jax2onnx",
                 "onnxruntime": "onnxruntime", "mediapipe": "mediapipe",
                 "playwright": "playwright", "IPython": "ipython", "tensorboard": "tensorboard"}


@pytest.mark.parametrize("ci", ["", "0", "false"])
def test_missing_module_or_executable_skips_outside_ci(ci, monkeypatch):
  monkeypatch.setenv("CI", ci)
  with pytest.raises(pytest.skip.Exception, match="no_such_module_x.*pip install it"):
    require("no_such_module_x", "pip install it")
  with pytest.raises(pytest.skip.Exception, match="no executable /nonexistent/chromium or nope"):
    require_executable("/nonexistent/chromium", "nope")


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_missing_module_or_executable_fails_under_ci(ci, monkeypatch):
  monkeypatch.setenv("CI", ci)
  with pytest.raises(pytest.fail.Exception, match="no_such_module_x.*CI=true"):
    require("no_such_module_x")
  with pytest.raises(pytest.fail.Exception, match="no executable /nonexistent/chromium"):
    require_executable("/nonexistent/chromium")


def test_present_module_and_executable_are_returned(monkeypatch):
  monkeypatch.setenv("CI", "true")
  assert require("json") is sys.modules["json"]
  assert require_executable("/nonexistent/x", sys.executable) == sys.executable
  # A module that is there but cannot be imported counts as missing (as a broken install).
  monkeypatch.setitem(sys.modules, "torch", None)
  with pytest.raises(pytest.fail.Exception, match="torch is not importable"):
    require("torch")


def _test_sources() -> dict[str, str]:
  """The other test files' text (this one names modules that do not exist)."""
  return {p.name: p.read_text() for p in sorted(TESTS.glob("*.py"))
          if p.name != "test_optional_deps.py"}


def test_no_test_goes_around_require():
  """importorskip, or a skip mark on a find_spec flag, would skip silently under CI too."""
  banned = re.compile(r"importorskip\(|skipif\([^)]*(HAS_|find_spec)")
  offenders = {name: m.group(0) for name, text in _test_sources().items()
               if (m := banned.search(text))}
  assert not offenders, offenders


def test_ci_entry_point_sets_ci_before_make_test():
  lines = [ln.strip() for ln in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
  assert "make test" in lines and "export CI=true" in lines
  assert lines.index("export CI=true") < lines.index("make test")


def _installed_by_make_test() -> set[str]:
  """Distribution names that `make test` (its install-test recipe) installs."""
  makefile = (REPO_ROOT / "Makefile").read_text()
  recipe = re.search(r"^install-test:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
  project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
  extras = project["optional-dependencies"]
  names, todo = set(), [e for grp in re.findall(r"\.\[([^\]]+)\]", recipe) for e in grp.split(",")]
  while todo:
    extra = todo.pop()
    for req in extras[extra]:
      if req.startswith("poseformer-jax["):
        todo += req[len("poseformer-jax["):req.index("]")].split(",")
      else:
        names.add(re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower())
  names |= {m.group(1).lower() for m in re.finditer(r"\binstall\b[^\n]*?\s([A-Za-z][\w.-]*)==",
                                                   recipe)}
  names |= {n.replace("-cpu", "") for n in names}  # tensorflow-cpu provides tensorflow
  return names


def test_every_required_module_is_installed_by_make_test():
  required = {m.split(".")[0] for text in _test_sources().values()
              for m in re.findall(r"\brequire\(\s*\"([\w.]+)\"", text)}
  assert {"torch", "mediapipe", "playwright"} <= required  # the scan sees the calls
  unknown = required - set(DISTRIBUTIONS)
  assert not unknown, f"add these to DISTRIBUTIONS: {unknown}"
  installed = _installed_by_make_test()
  assert {"torch", "mediapipe", "onnx"} <= installed  # the parse sees both places
  missing = {m: DISTRIBUTIONS[m] for m in required if DISTRIBUTIONS[m].lower() not in installed}
  assert not missing, f"required by tests but not installed by make install-test: {missing}"
