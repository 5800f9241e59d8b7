"""The README's table of shipped models, made from their model cards.

    python tools/pretrained_table.py            # prints the table
    python tools/pretrained_table.py --write    # puts it into README.md between its markers

`poseformer_jax.pretrained.summary_table` reads the cards; the documentation site shows the
same table (tools/docs_hooks.py), and tests/test_docs.py fails while the README's differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from poseformer_jax import pretrained  # noqa: E402 - after the repository is importable

START, END = "<!-- pretrained-table:start -->", "<!-- pretrained-table:end -->"


def readme_table() -> str:
  """The table with the README's links (cards beside the weights in the package)."""
  return pretrained.summary_table(lambda name: f"poseformer_jax/pretrained/{name}.md")


def write(readme: Path = REPO / "README.md") -> None:
  text = readme.read_text()
  head, start, rest = text.partition(START)
  _, end, tail = rest.partition(END)
  if not start or not end:
    raise SystemExit(f"error: {readme}: no {START} ... {END} markers")
  readme.write_text(f"{head}{START}\n{readme_table()}\n{END}{tail}")


if __name__ == "__main__":
  if sys.argv[1:] == ["--write"]:
    write()
  else:
    print(readme_table())
