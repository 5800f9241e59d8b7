"""Online lifting: one frame of 2D keypoints in, one 3D pose out, a fixed latency behind.

    from poseformer_jax import StreamingLifter
    lifter = StreamingLifter("pretrained:h36m-81_1_3-5subj", image_size=(1280, 720))
    for keypoints in camera:                     # (17, 2) H36M-17 pixels, NaN = missing
        pose = lifter.push(keypoints)            # (17, 3) of the frame pad behind, or None
    rest = lifter.flush()                        # (K, 17, 3): the last frames of the clip

The network sees an F-frame window centred on the frame it lifts, so by default the pose
of frame ``n - pad`` (``pad = (F - 1) // 2``, i.e. F // 2) is known once frame ``n`` has
arrived: that is the latency (40 frames = 1.3 s at 30 fps for F = 81). The window is cut
exactly as the offline path cuts it (`poseformer_jax.data.windows`): at the start of the
clip the first frame is repeated, and `flush` repeats the last frame for the final ``pad``
frames, so a gap-free clip gives the offline result (up to float rounding of a different
batch shape; tested to 1e-5 m).

``latency=N`` (0..pad) answers sooner: the pose of frame ``n - N`` once frame ``n`` has
arrived, its window's last ``pad - N`` frames repeating frame ``n`` as at a clip's end.
Fewer future frames cost accuracy (`benchmarks/bench_latency.py` measures how much);
`Predictor.predict_sequence(x, latency=N)` gives the same poses for a whole clip.

Missing joints: a joint missing in a frame takes its last seen position (a causal fill;
offline lifting interpolates across the gap with the future frames, so results differ
around gaps). Frames before every joint has been seen once cannot be filled causally:
they are skipped (no pose; `first_frame` tells where the poses start).
"""

from __future__ import annotations

import collections

import numpy as np

from poseformer_jax import trajectory
from poseformer_jax.data import cameras, windows
from poseformer_jax.errors import DataError
from poseformer_jax.lifter import Lifter, check_image_size, focal_px_for


class StreamingLifter:
  """Lifts a stream of 2D keypoints frame by frame (see the module doc).

  Args:
    checkpoint: a checkpoint directory, ``pretrained:NAME``, a
      ``(model, params, config)`` triple or a `poseformer_jax.lifter.Lifter`.
    image_size: (width, height) in pixels of the keypoints' image.
    flip: test-time flip averaging (as the offline default).
    record: keep the filled 2D keypoints and filled masks of the lifted
      frames (`history`), for exports after the stream ends.
    latency: frames between a frame's arrival and its pose, 0..pad (frames of
      future context each window sees); None: pad, the offline result.
    focal_px: the camera's focal length in pixels for the root trajectory (None:
      `poseformer_jax.lifter.focal_px_for`'s default field of view).

  With a checkpoint that has a trajectory model, every pose returned by `push` and
  `flush` also has its root's camera-frame position (metres): `last_roots`, (K, 3)
  for the K poses of the last call, and ``history['root_3d']`` when recording;
  the same windows as the poses (offline, with the full latency: `Lifter.roots`).
  """

  def __init__(self, checkpoint, image_size, *, flip: bool = True, record: bool = False,
               latency: int | None = None, focal_px: float | None = None):
    self.image_size = check_image_size(image_size)
    lifter = checkpoint if isinstance(checkpoint, Lifter) else Lifter(
        checkpoint, batch_size=1, flip=flip)
    self.num_frames, self.pad = lifter.num_frames, lifter.pad
    self.latency = self.pad if latency is None else windows.check_latency(latency, self.pad)
    self._predictor = lifter.predictor(1)
    self._roots = lifter.predictor(1, "trajectory") if lifter.has_trajectory else None
    self.focal_px = focal_px_for(self.image_size, focal_px)
    self.record = record
    self.reset()

  @property
  def frames_pushed(self) -> int:
    """Frames pushed since the last `reset` (or `flush`)."""
    return self._pushed

  def reset(self) -> None:
    """Starts a new clip."""
    self._frames = collections.deque(maxlen=self.num_frames)  # normalised (17, 2), filled
    self._rays = collections.deque(maxlen=self.num_frames)  # the same as pinhole rays
    self._pixels = collections.deque(maxlen=self.num_frames)  # (pixels, filled mask)
    self._last = np.full((17, 2), np.nan)  # last seen pixel position per joint
    self._pushed = 0  # frames pushed since reset
    self._accepted = 0  # frames since the first complete one (window indices)
    self.first_frame = None  # index of the first frame that gets a pose
    self.history = {"keypoints_2d": [], "filled": [], "root_3d": []}
    self.last_roots = np.zeros((0, 3), np.float32)

  def push(self, keypoints_2d) -> np.ndarray | None:
    """Adds one frame: (17, 2) H36M-17 pixels, NaN where missing.

    Returns the (17, 3) pose of the frame ``latency`` frames back, or None
    while there is none yet (the first ``latency`` frames, skipped frames).
    """
    kp = np.array(keypoints_2d, np.float64)
    if kp.shape != (17, 2):
      raise DataError(f"push takes one frame of H36M-17 pixels, shape (17, 2); got {kp.shape}")
    if np.isinf(kp).any():
      raise DataError("keypoints contain infinite values")
    self._pushed += 1
    missing = np.isnan(kp).any(-1)
    kp[missing] = np.nan
    self._last[~missing] = kp[~missing]
    if np.isnan(self._last).any():  # some joint never seen yet: nothing to fill from
      return None
    if self.first_frame is None:
      self.first_frame = self._pushed - 1
    kp[missing] = self._last[missing]
    w, h = self.image_size
    self._frames.append(cameras.normalize_screen(kp, w, h).astype(np.float32))
    self._rays.append(trajectory.rays_from_pixels(kp, self.focal_px, (w / 2, h / 2)))
    self._pixels.append((kp, missing))
    self._accepted += 1
    target = self._accepted - 1 - self.latency
    if target < 0:
      self.last_roots = np.zeros((0, 3), np.float32)
      return None
    return self._lift([target], self._accepted - 1)[0]

  def flush(self) -> np.ndarray:
    """Poses of the frames still waiting for their future (the clip's last ``latency``
    frames, edge-padded as offline), as (K, 17, 3); then the stream starts anew."""
    last = self._accepted - 1
    targets = list(range(max(0, self._accepted - self.latency), self._accepted))
    out, roots = [], []
    for m in targets:
      out.append(self._lift([m], last)[0])
      roots.append(self.last_roots)
    history, first = self.history, self.first_frame
    self.reset()
    self.history, self.first_frame = history, first
    self.last_roots = np.concatenate(roots) if roots else np.zeros((0, 3), np.float32)
    return np.stack(out) if out else np.zeros((0, 17, 3), np.float32)

  def _lift(self, targets, last: int) -> np.ndarray:
    """Poses of accepted-frame indices `targets`, with frames up to `last` known."""
    start = self._accepted - len(self._frames)  # accepted index of self._frames[0]
    m = np.asarray(targets)
    rows = windows.window_index(np.full(len(m), -start), np.full(len(m), last + 1), m, self.pad,
                                self.latency)  # frames up to `last`, `latency` after each
    x = np.stack(self._frames)[rows]
    self.last_roots = np.zeros((0, 3), np.float32)
    if self._roots is not None:
      self.last_roots = self._roots.predict_windows(np.stack(self._rays)[rows])[:, 0]
    if self.record:
      for i, m in enumerate(targets):
        kp, mask = self._pixels[m - start]
        self.history["keypoints_2d"].append(kp)
        self.history["filled"].append(mask)
        if self._roots is not None:
          self.history["root_3d"].append(self.last_roots[i])
    return self._predictor.predict_windows(x)
