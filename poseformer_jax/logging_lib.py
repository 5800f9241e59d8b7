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

from tqdm import tqdm


class _TensorBoard:
  """Scalars to TensorBoard event files with the `tensorboard` package only."""

  def __init__(self, logdir: Path):
    # Optional dependency (extra `tensorboard`), imported only when event files are wanted.
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


class TrainProgress:
  """What training shows of its steps: a tqdm bar per epoch with the loss and samples/s,
  per-step TensorBoard scalars on the steps the loop says to log, and each epoch's clock.

  Args:
    logger: the run's `MetricLogger` (per-step scalars).
    steps_per_epoch, epochs, global_batch: the run's shape.
    enabled: show the bar (process 0 with ``train.progress_bar``).
  """

  def __init__(self, logger: MetricLogger, *, steps_per_epoch: int, epochs: int,
               global_batch: int, enabled: bool):
    self.logger, self.enabled = logger, enabled
    self.steps_per_epoch, self.epochs, self.global_batch = steps_per_epoch, epochs, global_batch
    self._bar = None
    self._t_rate = self._t_epoch = time.perf_counter()
    self._n_rate = self._first = 0

  def begin_epoch(self, step: int) -> None:
    """Starts an epoch's bar and clock; `step` global steps are done already."""
    epoch, start = divmod(step, self.steps_per_epoch)
    if self.enabled:
      self._bar = tqdm(total=self.steps_per_epoch, initial=start, unit="step",
                       desc=f"epoch {epoch + 1}/{self.epochs}", dynamic_ncols=True, leave=True,
                       mininterval=0.5)
    self._t_rate = self._t_epoch = time.perf_counter()
    self._n_rate, self._first = 0, start

  def step(self, step: int, loss: float, grad_norm: float, *, log: bool) -> None:
    """Global step `step` is done with `loss` (metres); `log`: write its TensorBoard scalars
    and refresh the samples/s shown (also refreshed at the end of the epoch)."""
    self._n_rate += 1
    now = time.perf_counter()
    post = {"loss_mm": f"{loss * 1000.0:.1f}"}
    if now > self._t_rate and (log or step % self.steps_per_epoch == 0):
      post["samples/s"] = f"{self._n_rate * self.global_batch / (now - self._t_rate):.0f}"
      self._t_rate, self._n_rate = now, 0
    if self._bar is not None:
      self._bar.set_postfix(post, refresh=False)
      self._bar.update(1)
    if log:
      self.logger.scalars(step, {"train/step_loss_mm": loss * 1000.0,
                                 "train/grad_norm": grad_norm})

  def end_epoch(self) -> tuple[float, int]:
    """Closes the bar; returns (seconds, steps) timed in this epoch."""
    self.close()
    return time.perf_counter() - self._t_epoch, self.steps_per_epoch - self._first

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def epoch_line(record: dict, epochs: int) -> str:
  """The one-line summary printed after each epoch (an ``"epoch"`` log record)."""
  parts = [f"epoch {record['epoch']}/{epochs}", f"step {record['step']}",
           f"loss {record['train_loss_mm']:.2f} mm", f"lr {record['lr']:.3e}",
           f"{record['samples_per_s']:.0f} samples/s"]
  if record.get("val_p1") is not None:
    parts.append(f"val P1 {record['val_p1']:.2f} mm")
  if record.get("val_p2") is not None:
    parts.append(f"P2 {record['val_p2']:.2f} mm")
  if record.get("val_mrpe") is not None:
    parts.append(f"val MRPE {record['val_mrpe']:.1f} mm")
  if record.get("best"):
    parts.append("(best)")
  return " | ".join(parts)
