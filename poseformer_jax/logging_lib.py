"""Training logs: a JSON-lines file, TensorBoard event files and a progress bar.

* ``WORKDIR/log.jsonl``: one JSON object per line (``"kind": "epoch"`` records
  with train loss, validation P1/P2, learning rate, throughput; a ``"final"``
  record with the final evaluation). Appended to on resume.
* ``WORKDIR/tensorboard/``: scalar summaries written with TensorBoard's own
  event-file writer (no TensorFlow needed); skipped with a warning when the
  ``tensorboard`` package is not installed.
* A tqdm bar per epoch (loss and samples/s).

Only process 0 writes; the other processes get a logger that does nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any



class _TensorBoard:
  """Scalars to TensorBoard event files with the `tensorboard` package only."""

  def __init__(self, logdir: Path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    logdir.mkdir(parents=True, exist_ok=True)
    self._writer = EventFileWriter(str(logdir), flush_secs=30)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    summary = self._summary_pb2.Summary(value=[
        self._summary_pb2.Summary.Value(tag=k, simple_value=float(v))
        for k, v in values.items() if v is not None])
    self._writer.add_event(self._event_pb2.Event(
        wall_time=time.time(), step=int(step), summary=summary))

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


class MetricLogger:
  """Writes scalars to ``log.jsonl`` and TensorBoard (process 0 only).

  Args:
    workdir: the training directory.
    enabled: False on processes other than 0 (then every method is a no-op).
    tensorboard: write event files when the `tensorboard` package is importable.
  """

  def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True,
               tensorboard: bool = True):
    self.enabled = enabled
    self._tb = None
    self._path = Path(workdir) / "log.jsonl"
    if not enabled:
      return
    if tensorboard:
      try:
        self._tb = _TensorBoard(Path(workdir) / "tensorboard")
      except ImportError:
        print("warning: tensorboard is not installed, so no event files are written "
              "(pip install tensorboard); log.jsonl has the same numbers", file=sys.stderr)

  def write(self, record: dict[str, Any], *, step: int,
            tb_scalars: dict[str, float] | None = None) -> None:
    """Appends `record` to log.jsonl and `tb_scalars` (tag -> value) to TensorBoard."""
    if not self.enabled:
      return
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in record.items()}
    with open(self._path, "a") as f:
      f.write(json.dumps(clean) + "\n")
    if tb_scalars:
      self.scalars(step, tb_scalars)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    """TensorBoard only (e.g. per-step loss)."""
    if self.enabled and self._tb is not None:
      self._tb.scalars(step, {k: v for k, v in values.items()
                              if v is not None and math.isfinite(v)})

  def flush(self) -> None:
    if self.enabled and self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self.enabled and self._tb is not None:
      self._tb.close()
      self._tb = None


def read_log(workdir: str | os.PathLike, kind: str | None = None) -> list[dict[str, Any]]:
  """The records of ``WORKDIR/log.jsonl`` (optionally only those of one kind)."""
  path = Path(workdir) / "log.jsonl"
  if not path.exists():
    return []
  out = []
  for line in path.read_text().splitlines():
    line = line.strip()
    if not line:
      continue
    try:
      rec = json.loads(line)
    except ValueError:
      continue  # a line cut short by a crash
    if kind is None or rec.get("kind") == kind:
      out.append(rec)
  return out


class Progress:
  """A tqdm bar for one epoch; `update` with the latest loss (metres) and throughput."""

  def __init__(self, *, total: int, initial: int, desc: str, enabled: bool):
    self._bar = None
    if enabled:
      from tqdm import tqdm
      self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step",
                       dynamic_ncols=True, leave=True, mininterval=0.5)

  def update(self, n: int = 1, *, loss_mm: float | None = None,
             samples_per_s: float | None = None) -> None:
    if self._bar is None:
      return
    post = {}
    if loss_mm is not None:
      post["loss_mm"] = f"{loss_mm:.1f}"
    if samples_per_s is not None:
      post["samples/s"] = f"{samples_per_s:.0f}"
    if post:
      self._bar.set_postfix(post, refresh=False)
    self._bar.update(n)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
