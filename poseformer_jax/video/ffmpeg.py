"""Video frames in and out, through ffmpeg (imageio / imageio-ffmpeg, the ``video`` extra).

* in: `is_video` (by suffix), `video_info` (size and fps from the header),
  `count_frames`, `iter_frames` (every frame, RGB uint8, at any size), `frames_at` (frames
  decoded directly at a given size, from a given frame on);
* out: `open_writer` (an H.264 mp4 or a GIF with one palette for the clip);
* `quiet`: mutes two harmless messages while ffmpeg starts.

Every failure of a video is a one-line `DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from poseformer_jax.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".gif")


def is_video(path: str | os.PathLike) -> bool:
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


@contextlib.contextmanager
def quiet():
  """Mutes two harmless messages when an ffmpeg subprocess starts: JAX's warning
  about os.fork (subprocess forks and immediately execs ffmpeg, which is safe)
  and imageio-ffmpeg's note that frames are decoded at a size other than the
  source's (that scaling is what we ask for)."""
  logger = logging.getLogger("imageio_ffmpeg")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                              category=RuntimeWarning)
      yield
  finally:
    logger.setLevel(level)


def video_info(path: str | os.PathLike) -> dict:
  """{'size': (w, h), 'fps': float or None} of a video (reads the header only)."""
  import imageio.v2 as iio
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such video file")
  try:
    with quiet():
      reader = iio.get_reader(str(path), format="FFMPEG")
    meta = reader.get_meta_data()
    reader.close()
  except Exception as e:  # imageio/ffmpeg raise many types for unreadable media
    raise DataError(f"{path}: cannot read video ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''})") from None
  fps = meta.get("fps")
  return {"size": tuple(int(v) for v in meta["size"]),
          "fps": float(fps) if fps and np.isfinite(fps) and fps > 0 else None}


def count_frames(path: str | os.PathLike) -> int:
  """Number of frames of a video (ffmpeg decodes it once; about a second for a short clip)."""
  import imageio_ffmpeg
  try:
    with quiet():
      return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])
  except Exception as e:  # ffmpeg failures surface as RuntimeError/OSError
    raise DataError(f"{path}: cannot count video frames ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''})") from None


def frames_at(path, num_frames: int, size: tuple[int, int], image_size, start: int = 0, *,
              rgba: bool = False) -> Iterator:
  """Yields `num_frames` frames decoded at `size` (w, h), from frame `start` on: uint8
  (h, w, 3) RGB, or (h, w, 4) RGBA with `rgba` (opaque; what a canvas pastes without
  reshuffling bytes). None for no video. Frames are scaled by area averaging (they only
  shrink for a render's panel; cheaper than the default bicubic filter).

  Raises DataError if the video's size differs from `image_size` or it has
  fewer frames than the keypoints.
  """
  if path is None:
    for _ in range(num_frames):
      yield None
    return
  import imageio_ffmpeg
  info = video_info(path)
  if tuple(info["size"]) != tuple(image_size):
    raise DataError(f"{path}: video is {info['size'][0]}x{info['size'][1]} but the keypoints' "
                    f"image size is {image_size[0]}x{image_size[1]}")
  w, h = (int(v) for v in size)
  depth = 4 if rgba else 3
  frames = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgba" if rgba else "rgb24",
                                      bits_per_pixel=8 * depth,
                                      output_params=["-s", f"{w}x{h}", "-sws_flags", "area"])
  try:
    with quiet():
      next(frames)  # ffmpeg starts: its metadata
    n = 0
    for data in itertools.islice(frames, start, None):
      if n == num_frames:
        break
      yield np.frombuffer(data, np.uint8).reshape(h, w, depth)
      n += 1
    if n < num_frames:
      raise DataError(f"{path}: video has {n + start} frames but there are keypoints up to "
                      f"frame {start + num_frames}")
  finally:
    frames.close()


def iter_frames(path: str | os.PathLike, max_frames: int | None = None,
                size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
  """RGB uint8 frames of a video (ffmpeg through imageio), at most `max_frames`, decoded
  at `size` (w, h) when given (ffmpeg scales them), else at the video's size."""
  import imageio.v2 as iio
  try:
    with quiet():
      reader = iio.get_reader(str(path), format="FFMPEG",
                              **({"size": tuple(size)} if size else {}))
  except Exception as e:  # imageio/ffmpeg raise many types for unreadable media
    raise DataError(f"{path}: cannot read video ({type(e).__name__})") from None
  try:
    for i, frame in enumerate(reader):
      if max_frames is not None and i >= max_frames:
        break
      yield frame
  except (OSError, RuntimeError) as e:
    raise DataError(f"{path}: video decoding failed ({str(e).splitlines()[0] if str(e) else e})"
                    ) from None
  finally:
    reader.close()


def open_writer(path: Path, size: tuple[int, int], fps: float, gif_scale: float, *,
                rgba: bool = False):
  """A started ffmpeg encoder (imageio-ffmpeg generator) for .mp4 (H.264) or .gif, fed
  uint8 RGB frames, or RGBA with `rgba` (the alpha is ignored).

  GIFs get an optimal 256-colour palette for the whole clip (ffmpeg's
  palettegen/paletteuse), no dithering, and are scaled by `gif_scale`.
  """
  import imageio_ffmpeg
  pix_fmt_in = "rgba" if rgba else "rgb24"
  if path.suffix.lower() == ".mp4":
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="libx264", pix_fmt_in=pix_fmt_in,
        pix_fmt_out="yuv420p", quality=7, macro_block_size=16, ffmpeg_log_level="error",
        output_params=["-preset", "veryfast"])  # ~3x faster than 'medium', same size here
  else:  # opaque RGB first: a palette for RGBA would keep a slot for transparency
    scale = f"format=rgb24,scale=trunc(iw*{gif_scale}/2)*2:-2:flags=lanczos,"
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="gif", pix_fmt_in=pix_fmt_in, pix_fmt_out="pal8",
        macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-vf", scale + "split[a][b];[a]palettegen=stats_mode=full[p];"
                       "[b][p]paletteuse=dither=none", "-loop", "0"])
  writer.send(None)  # start ffmpeg
  return writer
