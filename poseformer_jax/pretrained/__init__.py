"""Models trained by this project, shipped inside the package: loaded by name, offline.

    from poseformer_jax import load_checkpoint
    model, params, config = load_checkpoint("pretrained:h36m-81_1_3-5subj")

Each model is a checkpoint directory of the project's one format (an orbax
manager folder, see `poseformer_jax.checkpoint`) stored beside this file, with
its parameters in float16 (half the size; `load_checkpoint` returns float32)
and a model card ``<name>.md``: data, recipe, command, hardware, accuracy.
Names work wherever a checkpoint directory does: `load_checkpoint`,
``eval.py --checkpoint=pretrained:NAME``, ``poseformer-jax lift
--checkpoint pretrained:NAME``.
"""

from __future__ import annotations

import re
from pathlib import Path

from poseformer_jax.errors import PoseFormerError

PREFIX = "pretrained:"
_HERE = Path(__file__).resolve().parent
DEFAULT = "h36m-81_1_3-5subj"
DEFAULT_CHECKPOINT = PREFIX + DEFAULT  # what lifting uses unless told otherwise


# The fixed subset on which a shipped model is re-evaluated against its card: these
# eval.py flags (with the real data's root), written into the card by `publish` and
# re-run by tests/test_pretrained.py (marker real_data).
CHECK_FLAGS = ("--config.data.subjects_test=S8", "--config.data.keypoints=gt",
               "--config.eval.max_frames=200")
CHECK_LINE = "Check subset P1"  # the card line: "Check subset P1: 48.222 mm (...)"
CHECK_MRPE_LINE = "Check subset MRPE"  # models with a trajectory: "Check subset MRPE: 131.2 mm"


class UnknownPretrainedError(PoseFormerError, ValueError):
  """A ``pretrained:NAME`` that the package does not ship."""


def available(root: Path = _HERE) -> list[str]:
  """Names of the shipped models (folders in `root`, beside this module, that hold a step)."""
  return sorted(p.name for p in Path(root).iterdir()
                if p.is_dir() and any(c.name.isdigit() for c in p.iterdir()))


def is_pretrained(spec) -> bool:
  """True for a string of the form ``pretrained:NAME``."""
  return isinstance(spec, str) and spec.startswith(PREFIX)


def path(spec: str, root: Path = _HERE) -> Path:
  """The checkpoint directory of ``pretrained:NAME`` (or of a bare NAME) in `root`."""
  name = spec[len(PREFIX):] if is_pretrained(spec) else spec
  names = available(root)
  if name not in names:
    raise UnknownPretrainedError(
        f"pretrained:{name}: no such shipped model; available: "
        f"{', '.join(PREFIX + n for n in names) or '(none)'}")
  return Path(root) / name


def model_card(spec: str, root: Path = _HERE) -> str:
  """The markdown model card of a shipped model."""
  return (Path(root) / f"{path(spec, root).name}.md").read_text()


def check_p1(spec: str, root: Path = _HERE) -> float:
  """The P1 (mm) a model's card records for `CHECK_FLAGS`."""
  return _card_figure(spec, root, CHECK_LINE)


def check_mrpe(spec: str, root: Path = _HERE) -> float | None:
  """The MRPE (mm) a model's card records for `CHECK_FLAGS`; None without a trajectory."""
  try:
    return _card_figure(spec, root, CHECK_MRPE_LINE)
  except PoseFormerError:
    return None


def _card_figure(spec: str, root: Path, line: str) -> float:
  match = re.search(re.escape(line) + r": ([0-9.]+) mm", model_card(spec, root))
  if match is None:
    raise PoseFormerError(f"{spec}: the model card has no '{line}: ... mm' line")
  return float(match.group(1))


def card_summary(spec: str, root: Path = _HERE) -> dict[str, str]:
  """The facts of a model card that a table of models shows (strings, as the card has them).

  Keys: ``name``, ``variant`` (F_f_n), ``subjects`` (training subjects), ``held_out`` (the
  heading's test split), ``accuracy`` (the card's headline line, e.g. ``GT 2D: P1 43.9 / ...
  mm``), ``trajectory`` (its MRPE line, or ``''`` without a trajectory model).
  """
  card = model_card(spec, root)
  name = path(spec, root).name

  def find(pattern: str, default: str = "") -> str:
    match = re.search(pattern, card, flags=re.MULTILINE)
    return match.group(1).strip() if match else default

  return {"name": name,
          "variant": find(r"^PoseFormerV2 (\d+_\d+_\d+)", "?"),
          "subjects": find(r"^- Data: [^`]*`([^`]+)`", "?").replace(",", ", "),
          "held_out": find(r"^## Held-out accuracy \(([^,)]+)", "?")
                      + (" (sibling)" if re.search(r"^## Held-out accuracy [^\n]*sibling", card,
                                                   flags=re.MULTILINE) else ""),
          "accuracy": find(r"^## Held-out accuracy[^\n]*\n\n([^\n]+)", "?"),
          "trajectory": find(r"^## Root trajectory[^\n]*\n\n[^\n]*\n\n([^\n]+)")}


def summary_table(card_link, root: Path = _HERE) -> str:
  """A markdown table of every shipped model, made from the cards (`card_summary`).

  `card_link(name)` gives the link target of a model's card (a path relative to the page
  that shows the table). The README and the documentation's pretrained page show it.
  """
  rows = ["| name | model | trained on | held-out accuracy | root trajectory | card |",
          "| --- | --- | --- | --- | --- | --- |"]
  for name in available(root):
    s = card_summary(name, root)
    rows.append(f"| `{PREFIX}{name}` | {s['variant']} | Human3.6M {s['subjects']} | "
                f"{s['held_out']}, {s['accuracy']} | {s['trajectory'] or '-'} | "
                f"[card]({card_link(name)}) |")
  return "\n".join(rows)
