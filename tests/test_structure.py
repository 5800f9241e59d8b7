"""The package's shape: no import cycle between its modules, no oversized file or function.

Static checks with `ast` (nothing is imported): every module of
``poseformer_jax/`` is parsed; the imports it runs at import time (module
level, class bodies and module-level ``if``/``try`` blocks; not function bodies
and not ``if TYPE_CHECKING:``) that name a module of the package form a
directed graph, which must have no cycle. Files stay within `MAX_FILE_LINES`
lines and functions (methods and nested functions too, from ``def`` to their
last line) within `MAX_FUNCTION_LINES`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "poseformer_jax"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
  """Dotted module name -> file, for every .py file of the package."""
  out = {}
  for path in sorted(ROOT.rglob("*.py")):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def _import_time_nodes(tree: ast.Module):
  """Import statements that run when the module is imported."""
  stack = list(tree.body)
  while stack:
    node = stack.pop()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      continue
    elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
      stack.extend(node.orelse)
    else:
      stack.extend(ast.iter_child_nodes(node))


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
  modules = _modules()
  names = set(modules)
  graph = {}
  for name, path in modules.items():
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    graph[name] = set().union(*(_targets(n, name, is_package, names)
                                for n in _import_time_nodes(tree)))
  return graph


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
  assert "poseformer_jax.model" in graph["poseformer_jax.checkpoint"]
  assert "poseformer_jax.train_step" in graph["poseformer_jax.train_lib"]
  assert "poseformer_jax.data.dataset" in graph["poseformer_jax.evaluation"]
  assert "poseformer_jax" not in graph["poseformer_jax.train_lib"]  # submodules, not the package
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


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
