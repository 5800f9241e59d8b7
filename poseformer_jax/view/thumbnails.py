"""Small JPEG frames of the input video for the viewer's 2D panel.

The frames are decoded by ffmpeg at `WIDTH` pixels wide (imageio-ffmpeg) and
JPEG-encoded (Pillow). To keep the page small, at most `BUDGET_BYTES` of
images are kept: every `stride`-th frame, `stride` chosen from the size of the
first encoded frame; the panel shows the latest kept frame at or before the
current one.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import os
from pathlib import Path

from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.video.ffmpeg import quiet, video_info

WIDTH = 240  # pixels
QUALITY = 60  # JPEG quality
BUDGET_BYTES = 3_000_000  # of base64 text in the page


def _jpeg(frame) -> str:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(frame).save(buf, format="JPEG", quality=QUALITY, optimize=True)
  return base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnails(video: str | os.PathLike, first: int, count: int, image_size=None, *,
               width: int = WIDTH, budget: int = BUDGET_BYTES, progress: bool = False) -> dict:
  """JPEG frames `first` .. `first + count - 1` of `video` (every `stride`-th).

  Args:
    video: the input video of the result.
    first, count: video frame number of the result's first row, number of rows.
    image_size: (w, h) pixels the keypoints refer to; the video must have it.
    width: thumbnail width in pixels (the height keeps the aspect ratio).
    budget: most bytes of base64 JPEG text kept in all.
  Returns:
    ``{"stride": s, "images": [base64 JPEG, ...]}``, image k = frame first + k * s.
  Raises:
    DataError: unreadable video, another size than `image_size`, or fewer frames.
  """
  import imageio.v2 as iio
  path = Path(video)
  info = video_info(path)
  w, h = info["size"]
  if image_size is not None and tuple(image_size) != (w, h):
    raise DataError(f"{path}: video is {w}x{h} but the result's image size is "
                    f"{image_size[0]}x{image_size[1]}")
  size = (int(width) // 2 * 2, max(2, round(width * h / w / 2) * 2))
  images, stride, decoded = [], None, 0
  with quiet():
    reader = iio.get_reader(str(path), format="FFMPEG", size=size)
  try:
    frames = itertools.islice(iter(reader), first, first + count)
    for k, frame in enumerate(tqdm(frames, total=count, desc="thumbnails", unit="frame",
                                   disable=not progress)):
      decoded += 1
      if stride is not None and k % stride:
        continue
      images.append(_jpeg(frame))
      if stride is None:
        stride = max(1, math.ceil(count * len(images[0]) * 1.1 / budget))
  finally:
    reader.close()
  if decoded < count:
    raise DataError(f"{path}: the video ends before frame {first + count - 1} of the result")
  return {"stride": stride or 1, "images": images}
