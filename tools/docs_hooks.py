"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks``).

* The model cards shipped in the package (``poseformer_jax/pretrained/NAME.md`` and their
  curves) become pages ``models/NAME.md``, and ``CHANGELOG.md`` becomes ``changelog.md``: one
  text each, in the place it lives, never copied by hand.
* ``<!-- pretrained-table -->`` in a page becomes the table of shipped models, made from the
  cards (`poseformer_jax.pretrained.summary_table`), as in the README.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from poseformer_jax import pretrained  # noqa: E402 - after the repository is importable

CARDS = REPO / "poseformer_jax" / "pretrained"
TABLE_MARK = "<!-- pretrained-table -->"


def on_files(files, config):
  """Adds the cards, their images and the changelog to the site's files."""
  extra = {"changelog.md": REPO / "CHANGELOG.md"}
  for name in pretrained.available(CARDS):
    extra[f"models/{name}.md"] = CARDS / f"{name}.md"
    for image in sorted(CARDS.glob(f"{name}*.png")):
      extra[f"models/{image.name}"] = image
  for uri, source in extra.items():
    files.append(File.generated(config, uri, abs_src_path=str(source)))
  return files


def on_page_markdown(markdown, page, config, files):
  """Puts the table of shipped models where a page asks for it."""
  if TABLE_MARK not in markdown:
    return markdown
  depth = page.file.src_uri.count("/")
  prefix = "../" * depth
  return markdown.replace(TABLE_MARK, pretrained.summary_table(
      lambda name: f"{prefix}models/{name}.md", CARDS))
