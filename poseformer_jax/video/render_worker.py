"""Rendering in a process of its own, started before there is anything to draw.

`RenderWorker` runs `render.render_people` (the very code of an in-process render, so the
same files) in a separate Python process: drawing is Python and matplotlib, which would
hold the interpreter lock that the rest of the command needs, so a thread would not run
beside it. The worker is started first: its interpreter loads matplotlib and ffmpeg's
bindings while the parent detects and lifts. Then `start` hands it the people (per-frame
arrays: a few MB for a minute) and the parent writes its other files while the worker
decodes the video (at the panel's size), draws and encodes.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import time

from poseformer_jax.errors import DataError
from poseformer_jax.video import render


class RenderWorker:
  """`render.render_people` in a worker process (see the module doc).

  `start(video_path, people, out_path, fps, **options)` gives it its job (the arguments of
  `render.render_people`); `done` is how many frames it has written so far; `finish` waits
  for the files and returns the seconds the worker spent on them. An error in the worker
  is raised by `finish` as a one-line `DataError`. `close` ends the worker (after `finish`,
  or to abort: the files are then incomplete, and left to the caller to remove).
  """

  def __init__(self):
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied JAX threads
    self._jobs = ctx.Queue()
    self._replies = ctx.Queue()
    self._done = ctx.Value("i", 0)
    self._stop = ctx.Event()
    self._process = ctx.Process(target=_serve, daemon=True, name="poseformer-jax-render",
                                args=(self._jobs, self._replies, self._done, self._stop))
    self._process.start()
    self._finished = False

  @property
  def done(self) -> int:
    return int(self._done.value)

  def start(self, video_path, people, out_path, fps: float, **options) -> None:
    self._jobs.put((video_path, list(people), out_path, fps, options))

  def finish(self, wait=None) -> float:
    """Waits for the worker to write everything; `wait(done)` is called about every 0.2 s
    meanwhile (a progress bar). Returns the worker's busy seconds."""
    while True:
      try:
        kind, value = self._replies.get(timeout=0.2)
        break
      except queue.Empty:
        if not self._process.is_alive():
          raise DataError(f"the render process ended unexpectedly (exit code "
                          f"{self._process.exitcode})") from None
        if wait is not None:
          wait(self.done)
    self._finished = True
    if kind == "error":
      raise DataError(value)
    if wait is not None:
      wait(self.done)
    return value

  def close(self) -> None:
    if self._process.is_alive() and not self._finished:
      self._stop.set()  # the render stops at its next frame
      self._jobs.put(None)  # or before it started
    self._process.join(timeout=10)
    if self._process.is_alive():
      self._process.terminate()
      self._process.join(timeout=5)
    self._jobs.close()
    self._replies.close()

  def __enter__(self) -> "RenderWorker":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class _Stopped(Exception):
  """The parent asked the worker to stop (`RenderWorker.close` before `finish`)."""


def _serve(jobs, replies, done, stop) -> None:
  """The worker process: one `render.render_people` job, or None (nothing to do)."""
  # An aborted render leaves files the parent removes: no note about them on stderr.
  logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
  # Loaded while the parent still detects: the first frame does not wait for them.
  from matplotlib.backends import backend_agg  # noqa: F401
  from mpl_toolkits.mplot3d import Axes3D  # noqa: F401
  job = jobs.get()
  if job is None:
    return
  video_path, people, out_path, fps, options = job

  def progress(n: int) -> None:
    done.value = n
    if stop.is_set():
      raise _Stopped

  start = time.perf_counter()
  try:
    render.render_people(video_path, people, out_path, fps, progress=progress, **options)
    replies.put(("ok", time.perf_counter() - start))
  except _Stopped:
    pass
  except DataError as e:
    replies.put(("error", str(e)))
  except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
    replies.put(("error", f"rendering failed ({type(e).__name__}: {e})"))
