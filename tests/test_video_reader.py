"""Frames for a detector: decoded ahead in a thread (`video.reader.prefetch`), at the size the
detector needs (`reader.decode_size`, `detect.frames_for`), keypoints scaled back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from poseformer_jax.video import detect, reader


def test_prefetch_keeps_order_raises_where_it_failed_and_closes_the_source():
  assert list(reader.prefetch(range(50), depth=3)) == list(range(50))
  closed = threading.Event()

  def failing():
    try:
      yield from (1, 2)
      raise ValueError("bad frame 2")
    finally:
      closed.set()

  got = []
  with pytest.raises(ValueError, match="bad frame 2"):
    for item in reader.prefetch(failing()):
      got.append(item)
  assert got == [1, 2] and closed.wait(5)
  closed.clear()

  def endless():
    try:
      n = 0
      while True:
        yield n
        n += 1
    finally:
      closed.set()

  frames = reader.prefetch(endless(), depth=2)
  assert [next(frames) for _ in range(5)] == [0, 1, 2, 3, 4]
  frames.close()  # the consumer stops early: the producer's generator is closed
  assert closed.wait(5) and list(frames) == []


def test_decode_size_fits_the_detector_and_keeps_even_sizes():
  assert reader.decode_size((1920, 1080), 1280) == (1280, 720)
  assert reader.decode_size((1920, 1080), 960) == (960, 540)
  assert reader.decode_size((1080, 1920), 1280) == (720, 1280)
  assert reader.decode_size((1280, 720), 1280) == (1280, 720)
  assert reader.decode_size((640, 480), 1280) == (640, 480)
  assert reader.decode_size((1920, 1080), None) == (1920, 1080)
  assert reader.decode_size((1001, 333), 500) == (500, 166)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio starts ffmpeg
def test_frames_for_a_detector_are_decoded_at_its_size_and_mapped_back(tmp_path):
  """A 1920x1080 clip reaches MediaPipe's detectors at 1280x720, the same picture (a white
  square stays where it was), and keypoints on those frames map back to the video's pixels."""
  import imageio.v2 as iio
  video = tmp_path / "hd.mp4"
  with iio.get_writer(video, fps=10, macro_block_size=8) as w:
    for i in range(4):
      img = np.zeros((1080, 1920, 3), np.uint8)
      img[300:600, 600 + 100 * i:900 + 100 * i] = 255
      w.append_data(img)
  frames, decoded, size = detect.frames_for(detect.MediaPipeDetector, video, max_frames=3)
  got = list(frames)
  assert decoded == (1280, 720) and size == (1920, 1080) and len(got) == 3
  assert all(f.shape == (720, 1280, 3) for f in got)
  ys, xs = np.nonzero(got[2][..., 0] > 128)
  box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], np.float32)
  np.testing.assert_allclose(detect.to_video_pixels(box, decoded, size),
                             [[800, 300], [1100, 600]], atol=3)
  assert detect.to_video_pixels(box, size, size) is box
