"""Several people in a video, offline: MediaPipe's Pose Landmarker on crops that follow each person.

`detect_people` runs `PeopleDetector` over a video and returns every person it
found as a track: an id and, for each frame from the track's first to its last,
the 33 MediaPipe landmarks in pixels and their visibilities.

How (`poseformer_jax.video.tracking` holds the geometry):

* Models: the ``mediapipe==0.10.21`` wheel holds the two networks of MediaPipe
  Pose, a person detector (``pose_detection.tflite``) and the landmark model
  (``pose_landmark_full.tflite``). The Tasks API's ``PoseLandmarker`` runs them
  from a ``.task`` bundle; this module writes that bundle into a temporary
  folder when a detector is made (the two files with the input normalisation
  the API needs, [-1, 1] for the detector and [0, 1] for the landmarks, written
  as model metadata with MediaPipe's own metadata writer). Nothing is
  downloaded; the folder is removed on `close`.
* Finding people: every `SCAN_SECONDS` the whole frame and overlapping square
  tiles (`tracking.scan_tiles`) go through the landmarker; the detector looks at
  a 224-pixel image, so small people are found in the tiles. A candidate whose
  torso (shoulders and hips) is not visible, or that is a person already
  followed, starts nothing.
* Following them: each person gets a crop window twice their size and a
  landmarker of their own in video mode, which follows them from frame to
  frame in that window (landmarks only; its detector runs again when it loses
  them) and smooths the landmarks as MediaPipe Pose does. The window moves when
  they come near its edge. A person not found for `MISSED_SECONDS` ends their
  track; two tracks on one person are merged (the younger ends). A person who
  leaves and comes back gets a new id.

Frames are decoded in a thread of their own, at most 1280 pixels wide (`max_side`; the
tiles and crop windows are fractions of the frame, and the keypoints are scaled back to the
video's pixels). Speed on a 2-core AMD EPYC, 2026-12-04 (``benchmarks/bench_video.py``, video
decoding included): 22.6 frames/s on a minute of the 1080p NTU clip (one person); with a
training run using both cores 8.8 (MediaPipe Pose's one-person graph, `detect`, 16.3), 5-10
frames/s on two clips side by side at 1280x360 (two people). Each person followed costs one
landmark pass per frame, each scan one pass per region (about 40 % of the CPU time on that
clip; its regions run on `SCAN_THREADS` landmarkers side by side).
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.video import detect, ffmpeg, reader, tracking

SCAN_SECONDS = 0.5  # a scan for new people this often (and at the first frame)
MISSED_SECONDS = 0.3  # a person not found for longer ends their track
TORSO = (11, 12, 23, 24)  # MediaPipe landmarks: shoulders and hips
MIN_TORSO_VISIBILITY = 0.5  # a scan's candidate needs 3 of these 4 at least this visible
SCAN_POSES = 4  # people the landmarker reports per scanned region
SCAN_THREADS = 2  # landmarkers a scan runs side by side (at most one per CPU core)


class PeopleDetector:
  """Finds and follows every person of a video, frame by frame (see the module doc).

  Args:
    image_size: (w, h) pixels of the frames.
    fps: the video's frame rate (scans and track ends are timed in seconds).
  """

  layout = "mediapipe33"
  max_side = detect.MediaPipeDetector.max_side  # frames decoded no larger (`detect_people`)

  def __init__(self, image_size, fps: float):
    self._mp = detect.import_mediapipe()
    self.size = tuple(int(v) for v in image_size)
    self.fps = float(fps) if fps and fps > 0 else 25.0
    self._scan_every = max(1, round(self.fps * SCAN_SECONDS))
    self._max_missed = max(1, round(self.fps * MISSED_SECONDS))
    self._folder = tempfile.TemporaryDirectory(prefix="poseformer-jax-pose-")
    try:
      self._bundle = _write_bundle(Path(self._folder.name), self._mp)
      # Scans run their regions on SCAN_THREADS landmarkers side by side (image mode: each
      # region on its own, so the same people as one after the other, sooner).
      self._scanners = [self._landmarker(video=False, poses=SCAN_POSES)
                        for _ in range(max(1, min(SCAN_THREADS, os.cpu_count() or 1)))]
    except (RuntimeError, TypeError, ValueError) as e:  # what the Tasks API raises
      self._folder.cleanup()
      hint = ("MediaPipe was imported before poseformer_jax.video.detect, whose protobuf "
              "shim it needs: import poseformer_jax.video.detect first"
              if detect.MEDIAPIPE_IMPORTED_FIRST else f"install: {detect.INSTALL_HINT}")
      raise DataError(f"MediaPipe's Pose Landmarker did not start ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); {hint}") from None
    self._pool = None
    self._tracks: dict[str, dict] = {}
    self._next_id = 0
    self._frame = 0

  def _landmarker(self, *, video: bool, poses: int):
    vision = self._mp.vision
    mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
    options = vision.PoseLandmarkerOptions(
        base_options=self._mp.BaseOptions(model_asset_path=str(self._bundle)),
        running_mode=mode, num_poses=poses)
    with detect.native_stderr_muted():
      return vision.PoseLandmarker.create_from_options(options)

  def detect(self, frame: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The people in the next frame (RGB uint8 (H, W, 3)): ``{track id: (keypoints (33, 2)
    pixels, visibility (33,))}``."""
    frame = np.ascontiguousarray(np.asarray(frame)[..., :3], np.uint8)
    i, self._frame = self._frame, self._frame + 1
    stamp = int(round(i * 1000 / self.fps))
    found = {}
    for tid, track in self._tracks.items():
      person = self._follow(frame, track, stamp)
      if person is not None:
        found[tid] = person
        track["box"] = tracking.box_of(person[0], self.size)
        track["last"], track["age"] = i, track["age"] + 1
    boxes = {tid: self._tracks[tid]["box"] for tid in found}
    for tid in tracking.duplicates(boxes, {t: self._tracks[t]["age"] for t in boxes}):
      del found[tid]
      self._end(tid)
    if i % self._scan_every == 0:  # the last box of a person missed just now counts too
      found.update(self._scan(frame, i, [tr["box"] for tr in self._tracks.values()]))
    for tid in [t for t, tr in self._tracks.items() if i - tr["last"] > self._max_missed]:
      self._end(tid)
    for tid in found:
      if tracking.needs_new_window(self._tracks[tid]["box"], self._tracks[tid]["window"]):
        self._move(tid, self._tracks[tid]["box"])
    return found

  def _follow(self, frame, track, stamp):
    x0, y0, side = track["window"]
    crop = _crop(frame, x0, y0, side)
    image = self._mp.mp.Image(image_format=self._mp.mp.ImageFormat.SRGB, data=crop)
    with detect.native_stderr_muted():
      result = track["landmarker"].detect_for_video(image, stamp)
    if not result.pose_landmarks:
      return None
    return _pixels(result.pose_landmarks[0], x0, y0, side, side)

  def _scan(self, frame, i: int, known: list) -> dict:
    """New people in the whole frame and its tiles (see the module doc)."""
    tiles = tracking.scan_tiles(self.size)
    k = len(self._scanners)
    with detect.native_stderr_muted():  # here: the muting is not for threads to nest
      if self._pool is None:
        self._pool = ThreadPoolExecutor(k, thread_name_prefix="poseformer-jax-scan")
      parts = list(self._pool.map(self._scan_tiles, self._scanners,
                                  [tiles[j::k] for j in range(k)], [frame] * k))
    found = [None] * len(tiles)
    for j, part in enumerate(parts):
      found[j::k] = part
    candidates = [c for tile in found for c in tile]
    candidates = [(k, v) for k, v in candidates
                  if (v[list(TORSO)] >= MIN_TORSO_VISIBILITY).sum() >= 3]
    boxes = [tracking.box_of(k, self.size) for k, _ in candidates]
    new = {}
    for n in tracking.new_people(boxes, known):
      tid = str(self._next_id)
      self._next_id += 1
      self._tracks[tid] = {"last": i, "age": 1, "box": boxes[n], "window": None,
                           "landmarker": None}
      self._move(tid, boxes[n])
      new[tid] = candidates[n]
    return new

  def _scan_tiles(self, scanner, tiles, frame) -> list[list]:
    """(A scan thread.) Per tile (x, y, w, h), the people `scanner` finds in it."""
    out = []
    for x, y, w, h in tiles:
      image = self._mp.mp.Image(image_format=self._mp.mp.ImageFormat.SRGB,
                                data=np.ascontiguousarray(frame[y:y + h, x:x + w]))
      out.append([_pixels(lm, x, y, w, h) for lm in scanner.detect(image).pose_landmarks])
    return out

  def _move(self, tid: str, box) -> None:
    """A new window around `box`, with a fresh landmarker (its tracking state was in the old
    window's coordinates)."""
    track = self._tracks[tid]
    if track["landmarker"] is not None:
      track["landmarker"].close()
    track["window"] = tracking.window_around(box)
    track["landmarker"] = self._landmarker(video=True, poses=1)

  def _end(self, tid: str) -> None:
    self._tracks.pop(tid)["landmarker"].close()

  def close(self) -> None:
    with detect.native_stderr_muted():
      for tid in list(self._tracks):
        self._end(tid)
      for scanner in self._scanners:
        scanner.close()
    if self._pool is not None:
      self._pool.shutdown()
    self._folder.cleanup()


def _write_bundle(folder: Path, mp) -> Path:
  """The wheel's two pose models as a Pose Landmarker ``.task`` bundle in `folder`."""
  models = mp.root / "modules"
  parts = {"pose_detector.tflite": (models / "pose_detection" / "pose_detection.tflite",
                                    127.5, 127.5, 2),  # [-1, 1]; boxes, scores
           "pose_landmarks_detector.tflite": (
               models / "pose_landmark" / "pose_landmark_full.tflite",
               0.0, 255.0, 5)}  # [0, 1]; landmarks, presence, mask, heatmap, world landmarks
  bundle = folder / "pose_landmarker.task"
  with zipfile.ZipFile(bundle, "w") as z:
    for name, (path, mean, std, outputs) in parts.items():
      writer = mp.metadata_writer.MetadataWriter.create(bytearray(path.read_bytes()))
      writer.add_general_info(name, "MediaPipe Pose, from the mediapipe wheel")
      writer.add_image_input([mean], [std])
      for _ in range(outputs):
        writer.add_feature_output()
      z.writestr(name, bytes(writer.populate()[0]))
  return bundle


def _crop(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
  """The square ``frame[y0:y0+side, x0:x0+side]``, black where it reaches outside."""
  h, w = frame.shape[:2]
  out = np.zeros((side, side, 3), np.uint8)
  sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
  if sx1 > sx0 and sy1 > sy0:
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
  return out


def _pixels(landmarks, x0, y0, w, h) -> tuple[np.ndarray, np.ndarray]:
  """Landmarks normalised to a (w, h) region at (x0, y0) -> frame pixels, visibilities."""
  kps = np.array([(p.x * w + x0, p.y * h + y0) for p in landmarks], np.float32)
  return kps, np.array([p.visibility for p in landmarks], np.float32)


def detect_people(path: str | os.PathLike, *, max_frames: int | None = None,
                  progress: bool = True, on_frame=None) -> dict:
  """Every person in a video (see the module doc).

  `on_frame(i, found)`, if given, is called after each frame i (0, 1, ...) with the
  people found in it, ``{track id: (keypoints (33, 2) pixels of the video, visibility
  (33,))}``: what the returned tracks hold for that frame (work can start on them while
  detection goes on).

  Returns:
    dict with ``tracks``: ``{id: (frames (N,), keypoints (N, 33, 2) pixels, scores
    (N, 33))}`` (ids "0", "1", ... in order of appearance; frames consecutive from
    the track's first to its last, NaN keypoints and zero scores where the person
    was not found), ``frames`` (frames read), ``width``, ``height``, ``fps`` (or
    None), ``layout`` and ``seconds`` (detection time).
  Raises:
    DataError: unreadable video, a video without frames, MediaPipe missing.
  """
  info = ffmpeg.video_info(path)
  decoded = reader.decode_size(info["size"], getattr(PeopleDetector, "max_side", None))
  detector = PeopleDetector(decoded, info["fps"] or 25.0)
  seen: dict[str, dict[int, tuple]] = {}
  start, n = time.perf_counter(), 0
  with detect.native_stderr_muted() as err:
    frames, decoded, size = detect.frames_for(detector, path, max_frames)
    try:
      for n, frame in enumerate(tqdm(frames, desc="detect", unit="frame",
                                     disable=not progress, file=err), 1):
        found = {tid: (detect.to_video_pixels(kps, decoded, size), vis)
                 for tid, (kps, vis) in detector.detect(frame).items()}
        for tid, person in found.items():
          seen.setdefault(tid, {})[n - 1] = person
        if on_frame is not None:
          on_frame(n - 1, found)
    finally:
      frames.close()
      detector.close()
  if not n:
    raise DataError(f"{path}: the video has no frames")
  return {"tracks": {tid: _track(found) for tid, found in seen.items()}, "frames": n,
          "width": info["size"][0], "height": info["size"][1], "fps": info["fps"],
          "layout": PeopleDetector.layout, "seconds": time.perf_counter() - start}


def _track(found: dict[int, tuple]):
  first, last = min(found), max(found)
  kps = np.full((last - first + 1, 33, 2), np.nan, np.float32)
  scores = np.zeros((last - first + 1, 33), np.float32)
  for f, (k, v) in found.items():
    kps[f - first], scores[f - first] = k, v
  return np.arange(first, last + 1), kps, scores
