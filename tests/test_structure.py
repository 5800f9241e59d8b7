"""The package's shape: no import loop between its modules, imports at the top, no oversized
file or function.

Static checks with `ast` (nothing is imported): every module of
``poseformer_jax/`` is parsed; its imports that name a module of the package
(at module level, in class bodies, in ``if``/``try`` blocks and inside
functions; not under ``if TYPE_CHECKING:``) form a directed graph, which must
have no cycle: not even an import deferred into a function may close a loop.
Imports of the package inside functions -- ``import``/``from`` statements and
``importlib.import_module``/``__import__`` calls -- are at most
`MAX_LATE_IMPORTS`, each with a comment (on its line or right above) saying
why it cannot be at the top. Files stay within `MAX_FILE_LINES` lines and
functions (methods and nested functions too, from ``def`` to their last line)
within `MAX_FUNCTION_LINES`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "poseformer_jax"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80
MAX_LATE_IMPORTS = 5
_DYNAMIC = ("import_module", "__import__")


def _modules() -> dict[str, Path]:
  """Dotted module name -> file, for every .py file of the package."""
  out = {}
  for path in sorted(ROOT.rglob("*.py")):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def _import_nodes(tree: ast.Module, *, in_functions: bool = True):
  """(import statement, inside a function?) for every import of a module's code."""
  stack = [(node, False) for node in tree.body]
  while stack:
    node, deferred = stack.pop()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node, deferred
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      if in_functions:
        stack.extend((child, True) for child in ast.iter_child_nodes(node))
    elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
      stack.extend((child, deferred) for child in node.orelse)
    else:
      stack.extend((child, deferred) for child in ast.iter_child_nodes(node))


def _targets(node, module: str, is_package: bool, modules: set[str]) -> set[str]:
  """The package modules an import statement loads (the closest existing module)."""
  def closest(name: str) -> str | None:
    while name and name not in modules:
      name = name.rpartition(".")[0]
    return name or None

  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:
      anchor = module.split(".") if is_package else module.split(".")[:-1]
      anchor = anchor[:len(anchor) - (node.level - 1)]
      base = ".".join(anchor + ([base] if base else []))
    # `from pkg import name`: the submodule pkg.name, else pkg itself (closest below).
    names = [f"{base}.{alias.name}" for alias in node.names]
  found = {closest(n) for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}
  return {m for m in found if m is not None and m != module}


def import_graph() -> dict[str, set[str]]:
  """Module -> the package modules it imports, at import time or inside functions."""
  modules = _modules()
  names = set(modules)
  graph = {}
  for name, path in modules.items():
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    graph[name] = set().union(*(_targets(n, name, is_package, names)
                                for n, _ in _import_nodes(tree)))
  return graph


def late_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, bool]]:
  """(line, has a comment) of each import of the package inside a function of `source`:
  statements that name a package module, and dynamic imports (`_DYNAMIC` calls) whose
  argument is not a string naming another package."""
  tree = ast.parse(source)
  lines = source.splitlines()
  found = [n.lineno for n, deferred in _import_nodes(tree)
           if deferred and (_targets(n, module, is_package, _ALL) or _names_package(n))]
  for fn in ast.walk(tree):
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      continue
    for call in ast.walk(fn):
      if (isinstance(call, ast.Call) and _called_name(call.func) in _DYNAMIC
          and not _names_other_package(call)):
        found.append(call.lineno)

  def commented(line: int) -> bool:
    return "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
  return [(line, commented(line)) for line in sorted(set(found))]


def _names_package(node) -> bool:
  """A relative import, or one of `poseformer_jax` itself."""
  if isinstance(node, ast.ImportFrom):
    return bool(node.level) or (node.module or "").split(".")[0] == PACKAGE
  return any(alias.name.split(".")[0] == PACKAGE for alias in node.names)


def _called_name(func) -> str:
  return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _names_other_package(call: ast.Call) -> bool:
  arg = call.args[0] if call.args else None
  return (isinstance(arg, ast.Constant) and isinstance(arg.value, str)
          and arg.value.split(".")[0] != PACKAGE)


_ALL = set(_modules())


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as a list of nodes (first == last), or None."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  path: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state and (cycle := visit(nxt)):
        return cycle
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state and (cycle := visit(node)):
      return cycle
  return None


def test_the_checks_see_imports_and_cycles():
  graph = import_graph()
  assert "poseformer_jax.architectures" in graph["poseformer_jax.checkpoint"]
  assert "poseformer_jax.train_step" in graph["poseformer_jax.train_lib"]
  assert "poseformer_jax.data.dataset" in graph["poseformer_jax.evaluation"]
  assert "poseformer_jax" not in graph["poseformer_jax.train_lib"]  # submodules, not the package
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_sees_imports_inside_functions():
  code = """import os
from poseformer_jax import cli


def f():
  # why: loads JAX
  from poseformer_jax.video import pipeline
  import numpy
  return importlib.import_module(NAME)


def g():
  from . import formats
  return importlib.import_module("onnx"), __import__("poseformer_jax.model")
"""
  found = late_imports(code, "poseformer_jax.video.x")
  assert found == [(7, True), (9, False), (13, False), (14, False)]
  graph = {"a": set()}
  tree = ast.parse("def f():\n  from poseformer_jax import cli\n")
  graph["a"] |= _targets(next(_import_nodes(tree))[0], "a", False, _ALL)
  assert graph["a"] == {"poseformer_jax.cli"}
  assert not list(_import_nodes(tree, in_functions=False))


def test_imports_of_the_package_stay_at_the_top():
  """At most `MAX_LATE_IMPORTS` imports of the package inside functions, each explained."""
  late = {}
  for name, path in _modules().items():
    for line, commented in late_imports(path.read_text(), name, path.name == "__init__.py"):
      late[f"{path.relative_to(ROOT.parent)}:{line}"] = commented
  assert len(late) <= MAX_LATE_IMPORTS, f"{len(late)} imports inside functions: {sorted(late)}"
  unexplained = sorted(k for k, commented in late.items() if not commented)
  assert not unexplained, f"imports inside functions without a comment saying why: {unexplained}"


def test_no_file_over_the_line_limit():
  too_long = {str(path.relative_to(ROOT.parent)): n for path in _modules().values()
              if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES}
  assert not too_long, f"files over {MAX_FILE_LINES} lines: {too_long}"


def test_no_function_over_the_line_limit():
  too_long = {}
  for path in _modules().values():
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        n = node.end_lineno - node.lineno + 1
        if n > MAX_FUNCTION_LINES:
          too_long[f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}"] = n
  assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
