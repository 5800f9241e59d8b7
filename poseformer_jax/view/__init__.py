"""See lifted poses in 3D: an interactive viewer in one self-contained HTML file.

Command line::

    poseformer-jax lift ... --html out.html          # with the other outputs of a lift
    poseformer-jax view RESULT.npz --html out.html [--video in.mp4]   # a result written before

Python / Jupyter::

    from poseformer_jax import view
    view.show("runs/demo/skater_3d.npz")             # inline in a notebook
    view.write_html("out.html", result)              # result: npz path, `Result` or (T, 17, 3)

The page (`poseformer_jax.view.page`) opens playing: the 3D skeleton(s) with
play/pause, a frame slider, speed, orbit/zoom/pan with the mouse and a reset
button, left limbs blue and right limbs red as in the mp4 render, a ground
grid, frame number and time; the root trajectory and its trail when the
result has one (`poseformer_jax.view.result`); several tracks labelled with
their ids; beside it the 2D keypoints of the frame, over the video frame when
a video is given (`poseformer_jax.view.thumbnails`). three.js is inside the
page (``assets/three.min.js``, see ``tools/three/README.md``): it works
offline from ``file://``.
"""

from __future__ import annotations

import html as _html
import os
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.view.page import build_html, save_page, to_viewer
from poseformer_jax.view.result import Result, Track, from_poses, load_result
from poseformer_jax.view.thumbnails import thumbnails

__all__ = ["Result", "Track", "Viewer", "as_result", "from_poses", "load_result", "show",
           "to_html", "to_viewer", "write_html"]


def as_result(result) -> Result:
  """A `Result` from a result npz path, a `Result`, or (T, 17, 3) root-relative poses."""
  if isinstance(result, Result):
    return result
  if isinstance(result, (str, os.PathLike)):
    return load_result(result)
  if isinstance(result, np.ndarray) or isinstance(result, (list, tuple)):
    return from_poses(result)
  raise DataError(f"cannot view a {type(result).__name__}: give a result npz path, a "
                  "view.Result or (T, 17, 3) poses")


def to_html(result, *, video: str | os.PathLike | None = None, title: str | None = None,
            progress: bool = False) -> str:
  """The viewer page of `result` (see `as_result`) as one HTML string; `video` adds
  its frames (small JPEGs) under the 2D keypoints."""
  res = as_result(result)
  images = None
  if video is not None:
    first = min(int(t.frames[0]) for t in res.tracks)
    last = max(int(t.frames[-1]) for t in res.tracks)
    images = thumbnails(video, first, last - first + 1, res.image_size, progress=progress)
  return build_html(res, title=title, video_images=images)


def write_html(path: str | os.PathLike, result, *, video: str | os.PathLike | None = None,
               title: str | None = None, progress: bool = False) -> Path:
  """Writes the viewer page of `result` to `path` (nothing is written on an error)."""
  return save_page(path, to_html(result, video=video, title=title, progress=progress))


class Viewer:
  """The page wrapped for notebooks: displayed inline as a sandboxed iframe."""

  def __init__(self, page: str, height: int = 560):
    self.page = page
    self.height = int(height)

  def _repr_html_(self) -> str:
    return (f'<iframe srcdoc="{_html.escape(self.page, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd"></iframe>')


def show(result, *, video: str | os.PathLike | None = None, title: str | None = None,
         height: int = 560) -> None:
  """Displays the viewer of `result` (see `as_result`) inline in Jupyter/IPython.

  Raises DataError outside IPython: write the page with `write_html` there.
  """
  try:
    from IPython import get_ipython
    from IPython.display import display
  except ImportError:
    get_ipython = None
  if get_ipython is None or get_ipython() is None:
    raise DataError("view.show displays in Jupyter/IPython; elsewhere write the page with "
                    "view.write_html(path, result)")
  display(Viewer(to_html(result, video=video, title=title), height))
