"""2D detection: video frames in, per-frame keypoints + confidences out.

Any object with a ``layout`` (one of `formats.FORMATS`) and a
``detect(frames) -> (keypoints, scores)`` method is a `Detector`:
keypoints (T, J, 2) pixels with NaN where nobody was found, scores (T, J) in
[0, 1] (0 where nobody was found). Two ship with the project:

* `MediaPipeDetector` — MediaPipe Pose (BlazePose GHUM, "full" model), run
  offline: its model files are inside the ``mediapipe==0.10.21`` wheel (the
  last release that bundles them; later releases download models at run
  time). That wheel declares ``numpy<2`` and ``protobuf<5`` but runs with this
  project's numpy 2 / protobuf 7 when driven as here, so it is installed
  without its declared dependencies: ``make install-detect`` (= ``pip install
  -e '.[detect]'`` then ``pip install --no-deps mediapipe==0.10.21``).
  Output layout ``mediapipe33``; one person (the most prominent), tracked
  from frame to frame. Several people: `poseformer_jax.video.people`.
* `KeypointFileDetector` — keypoints some other tool wrote (mmpose, rtmlib,
  OpenPose, ... in any `formats` layout), replayed frame by frame, so a
  pipeline written against `Detector` runs unchanged on precomputed files.

`detect_video` runs a detector over a video with a progress bar and returns
the arrays `formats.save_keypoints` writes (the project's keypoint npz).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
import types
from pathlib import Path
from typing import Iterable, Iterator, Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.video import ffmpeg, formats, reader

MEDIAPIPE_VERSION = "0.10.21"
INSTALL_HINT = ("make install-detect  (= pip install -e '.[detect]' && "
                f"pip install --no-deps mediapipe=={MEDIAPIPE_VERSION})")
try:
  _LIBC = ctypes.CDLL(None)  # flushing C stdio buffers (POSIX)
except OSError:
  _LIBC = None


@runtime_checkable
class Detector(Protocol):
  """A 2D keypoint detector (see the module doc). One may also say, as ``max_side``, how many
  pixels along the longer side it needs: video frames are then decoded no larger
  (`frames_for`) and its keypoints scaled back (`to_video_pixels`)."""

  layout: str

  def detect(self, frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 frames (H, W, 3) -> keypoints (T, J, 2) pixels (NaN = not found),
    scores (T, J). Consecutive calls continue the same video (trackers keep state)."""
    ...


@contextlib.contextmanager
def native_stderr_muted():
  """Sends file descriptor 2 to /dev/null while the block runs; yields a text stream to the
  real stderr (for progress bars). MediaPipe's C++ code (glog, TFLite) logs to fd 2 from
  its worker threads, which would break the one-line-error promise of the commands.
  Nested use is fine (the inner one yields the same stream)."""
  global _MUTE_DEPTH, _REAL_STDERR
  if _MUTE_DEPTH:
    _MUTE_DEPTH += 1
    try:
      yield _REAL_STDERR
    finally:
      _MUTE_DEPTH -= 1
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  _REAL_STDERR = os.fdopen(os.dup(saved), "w", buffering=1, closefd=True)
  _MUTE_DEPTH = 1
  try:
    os.dup2(devnull, 2)
    yield _REAL_STDERR
  finally:
    _MUTE_DEPTH = 0
    sys.stderr.flush()
    if _LIBC is not None:
      _LIBC.fflush(None)  # C stdio buffers go to /dev/null too, not after the restore
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
    _REAL_STDERR.close()
    _REAL_STDERR = None


_MUTE_DEPTH = 0
_REAL_STDERR = None


def _give_protobuf_get_prototype() -> None:
  """Gives protobuf's ``MessageFactory`` back its ``GetPrototype`` (protobuf 5 removed it;
  ``message_factory.GetMessageClass`` is the same function). MediaPipe 0.10.21's C++
  bindings look it up once, when they are first imported, to convert Python messages (the
  Tasks API hands its graph config over that way); without it that conversion fails for
  the life of the process. So it runs when this module is imported, before anything
  imports MediaPipe."""
  try:
    from google.protobuf import message_factory  # a dependency of the detect extra
  except ImportError:
    return
  if not hasattr(message_factory.MessageFactory, "GetPrototype"):
    message_factory.MessageFactory.GetPrototype = (
        lambda self, descriptor: message_factory.GetMessageClass(descriptor))


MEDIAPIPE_IMPORTED_FIRST = "mediapipe" in sys.modules  # then the shim below came too late
_give_protobuf_get_prototype()


def import_mediapipe() -> types.SimpleNamespace:
  """MediaPipe, imported the way this project drives it; a DataError with the install
  command if it is missing or ships no pose model.

  Two shims make ``mediapipe==0.10.21`` work beside this project's packages: TensorFlow is
  hidden while MediaPipe is imported (it would load it only for API docs and file
  utilities: seconds, log noise), and `_give_protobuf_get_prototype` (already run when
  this module was imported).

  Returns:
    a namespace: ``mp`` (the module), ``root`` (its folder), ``SolutionBase`` and
    ``pose_graph`` (the legacy pose graph), ``vision`` and ``BaseOptions`` (the Tasks
    API), ``metadata_writer`` (MediaPipe's model metadata writer).
  """
  _give_protobuf_get_prototype()
  blocked = "tensorflow" not in sys.modules
  if blocked:
    sys.modules["tensorflow"] = None
  try:
    with native_stderr_muted():
      import mediapipe
      from mediapipe.python import solution_base
      from mediapipe.python.solutions import pose
      from mediapipe.tasks.python import BaseOptions, vision
      from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
  except ImportError as e:
    raise DataError(f"the built-in detector needs MediaPipe {MEDIAPIPE_VERSION} ({e}); "
                    f"install it with: {INSTALL_HINT}") from None
  finally:
    if blocked and sys.modules.get("tensorflow", 0) is None:
      del sys.modules["tensorflow"]
  root = Path(mediapipe.__file__).parent
  if not (root / "modules" / "pose_landmark" / "pose_landmark_full.tflite").is_file():
    raise DataError(f"mediapipe {getattr(mediapipe, '__version__', '?')} has no bundled pose "
                    f"model; install the version that ships it: {INSTALL_HINT}")
  return types.SimpleNamespace(
      mp=mediapipe, root=root, SolutionBase=solution_base.SolutionBase,
      pose_graph=pose._BINARYPB_FILE_PATH, vision=vision, BaseOptions=BaseOptions,
      metadata_writer=metadata_writer)


class MediaPipeDetector:
  """MediaPipe Pose, offline (bundled "full" landmark model), as a `Detector`.

  Args:
    smooth: MediaPipe's landmark smoothing across frames (video mode).
    static_image_mode: detect afresh in every frame (no tracking, no smoothing).

  Runs the legacy pose graph of the wheel directly (`SolutionBase` with the
  graph's side packets); the detection and tracking thresholds are the
  graph's defaults (0.5), as ``mp.solutions.pose.Pose()``'s.
  """

  layout = "mediapipe33"
  # Frames decoded no larger along the longer side: MediaPipe looks at a 256x256 crop of
  # the person (and 224x224 of the whole frame to find one). 1080p frames at 1280x720 move
  # its H36M-17 keypoints by 0.4 px (median; 95 % within 1.0 px) on the shared 1080p clip;
  # at 960 px the 720p clip's differ by 0.8 px (95 %: 5.8 px) as its tracking drifts.
  max_side = 1280

  def __init__(self, *, smooth: bool = True, static_image_mode: bool = False):
    mp = import_mediapipe()
    video = not static_image_mode
    with native_stderr_muted():
      self._graph = mp.SolutionBase(
          binary_graph_path=mp.pose_graph,
          side_inputs={"model_complexity": 1, "smooth_landmarks": smooth and video,
                       "enable_segmentation": False, "smooth_segmentation": False,
                       "use_prev_landmarks": video},
          outputs=["pose_landmarks"])

  def detect(self, frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    kps, scores = [], []
    for frame in frames:
      frame = np.ascontiguousarray(frame[..., :3], np.uint8)
      h, w = frame.shape[:2]
      with native_stderr_muted():
        result = self._graph.process({"image": frame})
      landmarks = result.pose_landmarks
      if landmarks is None:
        kps.append(np.full((33, 2), np.nan, np.float32))
        scores.append(np.zeros(33, np.float32))
        continue
      lm = landmarks.landmark
      kps.append(np.array([(p.x * w, p.y * h) for p in lm], np.float32))
      scores.append(np.array([p.visibility for p in lm], np.float32))
    if not kps:
      return np.zeros((0, 33, 2), np.float32), np.zeros((0, 33), np.float32)
    return np.stack(kps), np.stack(scores)

  def close(self):
    with native_stderr_muted():
      self._graph.close()


class KeypointFileDetector:
  """Replays keypoints read from a file (mmpose / rtmlib / OpenPose output ...) as a
  `Detector`: `detect` returns the next len(frames) frames of the file (NaN past its end).

  Args:
    path: keypoint file; fmt: its layout (`formats.FORMATS`).
  """

  def __init__(self, path: str | os.PathLike, fmt: str, *, min_score: float | None = None):
    # Already H36M-17 after loading; scores are 1 where a joint is present.
    self._kps, self.image_size, self.fps = formats.load_keypoints(path, fmt, min_score=min_score)
    self.layout = "h36m17"
    self._next = 0

  def detect(self, frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = sum(1 for _ in frames)
    out = np.full((n, 17, 2), np.nan)
    part = self._kps[self._next:self._next + n]
    out[:len(part)] = part
    self._next += n
    return out, np.isfinite(out).all(-1).astype(np.float32)


# --- video in -----------------------------------------------------------------------------------

def frames_for(detector, path: str | os.PathLike, max_frames: int | None = None):
  """A video's frames for `detector`, decoded ahead in a thread (`reader.prefetch`) at the
  size it needs (`reader.decode_size` of its ``max_side``, when it has one).
  Returns (frames, (w, h) decoded, (W, H) of the video); `to_video_pixels` maps back."""
  size = tuple(ffmpeg.video_info(path)["size"])
  decoded = reader.decode_size(size, getattr(detector, "max_side", None))
  return reader.prefetch(ffmpeg.iter_frames(path, max_frames, decoded)), decoded, size


def to_video_pixels(keypoints: np.ndarray, decoded, size) -> np.ndarray:
  """Keypoints (..., 2) in pixels of frames decoded at `decoded` (w, h) -> pixels of the
  (W, H) video (a detector's normalised output scaled back)."""
  if tuple(decoded) == tuple(size):
    return keypoints
  return keypoints * np.array([size[0] / decoded[0], size[1] / decoded[1]], np.float32)


def iter_camera(index: int = 0, max_frames: int | None = None,
                max_side: int | None = None) -> Iterator[np.ndarray]:
  """RGB frames from a camera (OpenCV), until `max_frames` or the camera stops, shrunk to
  at most `max_side` pixels along the longer side (`reader.decode_size`). The camera is
  opened here (a DataError if there is none), not at the first frame."""
  try:
    import cv2
  except ImportError:
    raise DataError(f"--webcam needs OpenCV; install it with: {INSTALL_HINT}") from None
  with native_stderr_muted():  # OpenCV logs failed device probes to fd 2
    cap = cv2.VideoCapture(int(index))
    opened = cap.isOpened()
  if not opened:
    cap.release()
    raise DataError(f"no camera at index {index} (OpenCV could not open /dev/video{index})")
  return _camera_frames(cv2, cap, max_frames, max_side)


def _camera_frames(cv2, cap, max_frames, max_side):
  try:
    n = 0
    while max_frames is None or n < max_frames:
      ok, frame = cap.read()
      if not ok:
        break
      size = reader.decode_size((frame.shape[1], frame.shape[0]), max_side)
      if size != (frame.shape[1], frame.shape[0]):
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
      yield frame[..., ::-1]  # BGR -> RGB
      n += 1
  finally:
    cap.release()


def detect_video(path: str | os.PathLike, detector: Detector | None = None, *,
                 max_frames: int | None = None, progress: bool = True) -> dict:
  """Runs `detector` (default: a new `MediaPipeDetector`) over a video, its frames decoded
  ahead at the size it needs (`frames_for`).

  Returns:
    dict with ``keypoints`` (T, J, 2) pixels of the video, ``scores`` (T, J),
    ``detected`` (T,) bool (any joint found), ``width``, ``height``, ``fps`` (or
    None), ``layout`` and ``seconds`` (detection time).
  Raises:
    DataError: unreadable video, or a video without frames.
  """
  info = ffmpeg.video_info(path)
  own = detector is None
  detector = MediaPipeDetector() if own else detector
  kps, scores = [], []
  start = time.perf_counter()
  with native_stderr_muted() as err:
    frames, decoded, size = frames_for(detector, path, max_frames)
    try:
      for frame in tqdm(frames, desc="detect", unit="frame", disable=not progress, file=err):
        k, s = detector.detect([frame])
        kps.append(to_video_pixels(k[0], decoded, size))
        scores.append(s[0])
    finally:
      frames.close()
      if own:
        detector.close()
  if not kps:
    raise DataError(f"{path}: the video has no frames")
  kps, scores = np.stack(kps), np.stack(scores)
  return {"keypoints": kps, "scores": scores, "detected": np.isfinite(kps).all(-1).any(-1),
          "width": info["size"][0], "height": info["size"][1], "fps": info["fps"],
          "layout": detector.layout, "seconds": time.perf_counter() - start}
