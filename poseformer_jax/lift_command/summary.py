"""Stage timings and facts of a command, printed as a small table at the end."""

from __future__ import annotations

import contextlib
import time


class Summary:
  """Stage timings and facts, printed at the end."""

  def __init__(self):
    self.rows: list[list] = []  # [stage, frames, seconds, note]
    self.facts: list[str] = []

  @contextlib.contextmanager
  def stage(self, name: str, frames: int | None = None, note: str = ""):
    """Times a block; repeated stages of one name add up (frames and seconds)."""
    row = next((r for r in self.rows if r[0] == name), None)
    if row is None:
      row = [name, None, 0.0, note]
      self.rows.append(row)
    if frames is not None:
      row[1] = (row[1] or 0) + frames
    start = time.perf_counter()
    try:
      yield row
    finally:
      row[2] += time.perf_counter() - start

  def add(self, name: str, frames: int | None, seconds: float, note: str = "") -> None:
    """A stage timed elsewhere (in another thread or process, overlapped with others)."""
    self.rows.append([name, frames, float(seconds), note])

  def count(self, name: str, frames: int = 1) -> None:
    """Adds frames to the stage `name` (after its timed block)."""
    row = next(r for r in self.rows if r[0] == name)
    row[1] = (row[1] or 0) + frames

  def text(self) -> str:
    lines = ["summary: " + "; ".join(self.facts),
             f"  {'stage':<8} {'frames':>7} {'seconds':>8} {'frames/s':>9}"]
    for name, frames, secs, note in self.rows:
      rate = f"{frames / secs:9.1f}" if frames and secs > 0 else f"{'':>9}"
      lines.append(f"  {name:<8} {frames if frames is not None else '':>7} {secs:8.2f} {rate}"
                   + (f"  ({note})" if note else ""))
    return "\n".join(lines)
