"""A video's people lifted while it is still being detected (``poseformer-jax lift VIDEO``).

One after the other (``--sequential``), a video's stages add up: decode and detect, fill,
lift (and place), render. `pipeline.run` overlaps them, and writes the same files:

* frames are decoded ahead in a thread of their own, at the size the detector needs
  (`poseformer_jax.video.detect.frames_for`);
* the main thread finds and follows every person (`poseformer_jax.video.people`); every
  quarter chunk of frames, `EarlyLift` fills each track's frames so far and hands the
  frames that no later frame can change (`poseformer_jax.gaps.settled`) to a lifting
  thread, which lifts the chunks they complete (`poseformer_jax.lifter.Chunks`: poses and
  root trajectory) while detection goes on;
* the render worker (`poseformer_jax.video.render_worker`), a process of its own, starts
  meanwhile and draws the side-by-side video once the people are lifted (its floor and view
  fit the whole path), while the other files are written.

When the video has ended, its people go through the sequential path's steps (select,
low-confidence estimates, fill, warnings) and `EarlyLift.take` gives each chosen track's
outputs: the chunks lifted early, if the filled keypoints they saw are those steps' (else
they are lifted again), and the rest. Both paths lift a video in the same chunks, so the
values are the same bit for bit (tests/test_video_overlap.py).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from poseformer_jax import gaps
from poseformer_jax.data import skeleton
from poseformer_jax.lift_command import inputs
from poseformer_jax.lifter import Chunks, Lifter

# Frames per lifted chunk of a video: lifted during detection, so at most a chunk and the
# window's pad per person are left when it ends. A chunk computes its own windows only;
# smaller chunks only add passes (64: 29 passes for a minute at 30 fps).
VIDEO_CHUNK = 64


class EarlyLift:
  """A video's tracks lifted chunk by chunk while it is detected (see the module doc).

  `add` is `poseformer_jax.video.people.detect_people`'s ``on_frame``; `take` gives a
  chosen track's outputs once the video is done; `close` stops the lifting thread.

  Args:
    opts: the command's options (``min_score``); lifter: the `Lifter`.
    size: (w, h) pixels of the video; focal_px: the focal length for the roots (None:
      poses only); chunk: frames per chunk; layout: the detector's keypoint layout.
  """

  def __init__(self, opts, lifter: Lifter, size, focal_px: float | None, chunk: int,
               layout: str):
    self.opts, self.lifter, self.size, self.focal_px = opts, lifter, size, focal_px
    self.chunk, self.layout = int(chunk), layout
    self.every = max(1, self.chunk // 4)
    self.rows: dict[str, tuple[int, list, list]] = {}  # id -> (first frame, kps, scores)
    self.asked: dict[str, int] = {}  # id -> settled frames handed to the lifting thread
    self.checked: dict[str, int] = {}  # id -> frames it had when last looked at
    self.early: dict[str, dict] = {}  # id -> chunks, outputs, the keypoints they saw
    self.seconds, self.frames = 0.0, 0  # spent lifting, frames lifted (lifting thread)
    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poseformer-jax-lift",
                                    initializer=_yield_to_detection)
    # The chunks' forward passes compile while the detector starts.
    self._pending = [self._pool.submit(self._new_chunks().warm_up)]

  def _new_chunks(self) -> Chunks:
    return Chunks(self.lifter, self.size, self.chunk, focal_px=self.focal_px)

  def add(self, i: int, found: dict) -> None:
    """Frame `i`'s people, ``{id: (keypoints (J, 2) pixels, scores (J,))}``; every
    quarter chunk the settled frames go to the lifting thread."""
    for tid, (kps, scores) in found.items():
      first, rows, conf = self.rows.setdefault(tid, (i, [], []))
      while first + len(rows) < i:  # missed frames inside a track: NaN, as its arrays hold
        rows.append(np.full_like(kps, np.nan))
        conf.append(np.zeros_like(scores))
      rows.append(kps)
      conf.append(scores)
    if (i + 1) % self.every == 0:
      for tid in self.rows:
        self._settle(tid)

  def _settle(self, tid: str) -> None:
    first, rows, conf = self.rows[tid]
    if self.checked.get(tid) == len(rows):
      return  # not found since: nothing new
    self.checked[tid] = len(rows)
    p = inputs.person(tid, first + np.arange(len(rows)), np.stack(rows), np.stack(conf),
                      self.layout, self.opts.min_score)
    done = gaps.settled(p.keypoints)
    pad = self.lifter.pad
    if max(0, done - pad) // self.chunk <= max(0, self.asked.get(tid, 0) - pad) // self.chunk:
      return  # no further chunk complete
    self.asked[tid] = done
    # Every joint was present: the fallback to estimates changes nothing, and the first
    # `done` frames filled now are those of the whole track.
    filled = gaps.fill_gaps(p.keypoints, parents=skeleton.PARENTS)[0][:done]
    self._pending.append(self._pool.submit(self._lift, tid, filled))

  def _lift(self, tid: str, filled: np.ndarray) -> None:
    """(Lifting thread.) The chunks the settled frames `filled` complete."""
    start = time.perf_counter()
    e = self.early.setdefault(tid, {"chunks": self._new_chunks(), "parts": [], "seen": None,
                                    "consistent": True})
    if e["seen"] is not None:  # settled frames never change; checked, not assumed
      e["consistent"] &= np.array_equal(filled[:len(e["seen"])], e["seen"])
    e["seen"] = filled
    _, out = e["chunks"].lift(filled, known=len(filled))
    e["parts"].append(out)
    self.frames += len(out["poses_3d"] if "poses_3d" in out else out["root_3d"])
    self.seconds += time.perf_counter() - start

  def wait(self) -> None:
    """Until the lifting thread has lifted everything handed to it (its errors raised)."""
    for future in self._pending:
      future.result()
    self._pending = []

  def take(self, result: dict) -> dict[str, np.ndarray]:
    """A chosen track's outputs (``poses_3d``, and ``root_3d`` with a focal length) from
    its filled keypoints (`pipeline.fill`'s result): the chunks lifted early when they saw
    these keypoints, then the rest."""
    self.wait()
    kps = result["keypoints_2d"]
    e = self.early.get(result["track"])
    first = self.rows.get(result["track"], (None,))[0]
    if (e is None or not e["consistent"] or first != int(result["frames"][0])
        or not np.array_equal(kps[:len(e["seen"])], e["seen"])):
      e = {"chunks": self._new_chunks(), "parts": []}
    e["parts"].append(e["chunks"].lift(kps)[1])
    return {k: np.concatenate([part[k] for part in e["parts"]]) for k in e["parts"][0]}

  def close(self) -> None:
    """Stops the lifting thread (after its current chunk)."""
    self._pool.shutdown(wait=True, cancel_futures=True)


def _yield_to_detection() -> None:
  """(The lifting thread, once.) Lowers this thread's scheduling priority (Linux: a thread's
  own nice value), so that lifting and compiling take the CPU time detection leaves idle
  instead of slowing it down: on two cores detection keeps both busy most of the time. When
  detection ends the thread has the CPU to itself again."""
  try:
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
  except (AttributeError, OSError):  # no per-thread priorities here: lift at the same one
    pass
