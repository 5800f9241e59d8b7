"""Frames for a detector: decoded ahead in a thread of their own, at the size it needs.

* `prefetch` — runs an iterator (a video's or a camera's frames) in a background
  thread, a few items ahead of the consumer, so decoding (ffmpeg's pipe, OpenCV's
  camera) overlaps the detector instead of adding to it.
* `decode_size` — the size to decode at for a detector that looks at no more than
  `max_side` pixels (`detect.MediaPipeDetector.max_side`): a 1080p frame is 6 MB
  through ffmpeg's pipe and into the detector, at 1280x720 less than half of that.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterable


class prefetch:  # noqa: N801 - used like a function: for frame in prefetch(frames): ...
  """Iterates `iterable` in a background thread, at most `depth` items ahead.

  The consumer gets the items in order; an exception raised while producing them is
  raised in the consumer at that point. `close` (or leaving a ``with`` block) stops
  the thread and closes the iterator (a generator's ``finally`` runs in the thread).
  `waited` is the time the consumer spent waiting for items, seconds.
  """

  def __init__(self, iterable: Iterable, depth: int = 8):
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    self._stop = threading.Event()
    self._done = False
    self.waited = 0.0
    self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True,
                                    name="poseformer-jax-reader")
    self._thread.start()

  def _run(self, items) -> None:
    try:
      for item in items:
        if not self._put(("item", item)):
          return
      self._put(("end", None))
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
      self._put(("error", e))
    finally:
      close = getattr(items, "close", None)
      if close is not None:
        close()

  def _put(self, message) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(message, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def __iter__(self):
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    start = time.perf_counter()
    kind, value = self._queue.get()
    self.waited += time.perf_counter() - start
    if kind == "item":
      return value
    self.close()
    if kind == "error":
      raise value
    raise StopIteration

  def close(self) -> None:
    self._done = True
    self._stop.set()
    self._thread.join(timeout=10)

  def __enter__(self) -> "prefetch":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def decode_size(size, max_side: int | None) -> tuple[int, int]:
  """(w, h) to decode a (w, h) video at for a detector that needs at most `max_side`
  pixels along the longer side (None: the full size); even sizes, the aspect kept."""
  w, h = (int(v) for v in size)
  if max_side is None or max(w, h) <= max_side:
    return w, h
  scale = max_side / max(w, h)
  return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
