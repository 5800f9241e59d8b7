"""The lifting library: a whole clip of 2D keypoints to 3D (`lift`, `Lifter`).

    from poseformer_jax import lift, Lifter
    poses = lift(keypoints_2d, image_size=(1280, 720), checkpoint="pretrained:h36m-81_1_3-5subj")
    lifter = Lifter("ckpt/")          # many clips: loads once, keeps its compiled passes
    poses = lifter(keypoints_2d, (1280, 720))                                  # (T, 17, 3)

Missing joints (NaN) are interpolated along time first (`poseformer_jax.gaps`),
pixels are normalised by the image size (``x / w * 2 - [1, h / w]``), and every
frame is lifted by the project's one inference driver
(`poseformer_jax.inference.Predictor`): an F-frame window centred on it
(edge-padded at the clip's ends), test-time flip averaging, batched jitted
forward passes. Output: camera-space metres (x right, y down, z forward), root
(pelvis) relative. Online lifting, one frame at a time, is
`poseformer_jax.stream.StreamingLifter`; the command that detects people in a
video and writes files is ``poseformer-jax lift`` (`poseformer_jax.lift_command.main`).
"""

from __future__ import annotations

import os

import numpy as np

from poseformer_jax import gaps
from poseformer_jax import trajectory
from poseformer_jax.checkpoint import load_checkpoint, load_trajectory
from poseformer_jax.data import cameras, skeleton
from poseformer_jax.errors import DataError
from poseformer_jax.inference import Predictor
from poseformer_jax.pretrained import DEFAULT_CHECKPOINT

__all__ = ["DEFAULT_CHECKPOINT", "Chunks", "Lifter", "check_image_size", "focal_px_for", "lift"]


class Lifter:
  """A checkpoint loaded once, with its compiled forward passes: call it on clips.

  Args:
    checkpoint: a checkpoint directory, ``pretrained:NAME``, or the
      ``(model, params, config)`` triple from `poseformer_jax.load_checkpoint`.
    batch_size: windows per forward pass (capped per clip at its length
      rounded up to 16, so short clips do not compute padding).
    flip: test-time flip averaging (as the published results).
    trajectory: True: the checkpoint's trajectory model when it has one (a
      ``trajectory/`` folder, `checkpoint.load_trajectory`); False: none; or a
      ``(model, params, config)`` triple of one. Then `roots` places the person.
  """

  def __init__(self, checkpoint=DEFAULT_CHECKPOINT, *, batch_size: int = 1024,
               flip: bool = True, trajectory=True):
    if int(batch_size) != batch_size or batch_size < 1:
      raise DataError(f"batch_size must be a positive integer, got {batch_size}")
    self.model, self.params, self.config = _resolve_checkpoint(checkpoint)
    self.trajectory = _resolve_trajectory(checkpoint, trajectory)
    self.batch_size, self.flip = int(batch_size), bool(flip)
    self.num_frames = int(self.model.num_frames)
    self.pad = (self.num_frames - 1) // 2
    if self.trajectory is not None and int(self.trajectory[0].num_frames) != self.num_frames:
      raise DataError(f"the trajectory model sees {self.trajectory[0].num_frames} frames, the "
                      f"pose model {self.num_frames}; they must see the same windows")
    self._predictors: dict = {}  # (kind, batch size) -> Predictor (each compiles once)

  @property
  def has_trajectory(self) -> bool:
    """Whether the checkpoint carries a trajectory model (`roots` answers)."""
    return self.trajectory is not None

  @property
  def variant(self) -> str:
    return str(self.config.get("variant", "?")) if hasattr(self.config, "get") else "?"

  def predictor(self, batch_size: int | None = None, kind: str = "pose"):
    """The `Predictor` of the pose (or, `kind`='trajectory', the trajectory) weights for
    `batch_size` windows per pass (kept for reuse)."""
    b = int(batch_size or self.batch_size)
    if (kind, b) not in self._predictors:
      pose = kind == "pose"
      if not pose and self.trajectory is None:
        raise DataError("this checkpoint has no trajectory model (a trajectory/ folder)")
      model, params = (self.model, self.params) if pose else self.trajectory[:2]
      joints = (skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT) if pose else ((), ())
      self._predictors[kind, b] = Predictor(
          model, params, batch_size=b, flip=self.flip,
          kps_left=skeleton.JOINTS_LEFT, kps_right=skeleton.JOINTS_RIGHT,
          joints_left=joints[0], joints_right=joints[1], root_joint=0 if pose else None)
    return self._predictors[kind, b]

  def __call__(self, keypoints_2d, image_size, *, chunk_size: int | None = None,
               progress=None) -> np.ndarray:
    """(T, 17, 2) H36M-17 pixels (NaN = missing, interpolated first) -> (T, 17, 3).

    `progress`: optional callback with the number of frames done. See `lift`.
    """
    x, (w, h) = _check_keypoints(keypoints_2d, image_size, chunk_size)
    if chunk_size is not None:
      return Chunks(self, (w, h), chunk_size).lift(x, progress=progress)[1]["poses_3d"]
    xn = cameras.normalize_screen(x, w, h).astype(np.float32)
    return self._predict("pose", xn, progress)

  def roots(self, keypoints_2d, image_size, *, focal_px: float | None = None,
            chunk_size: int | None = None, progress=None) -> np.ndarray:
    """(T, 17, 2) H36M-17 pixels -> (T, 3) the root's camera-frame position, metres.

    The pixels become rays through a pinhole camera with its principal point at the
    image centre and focal length `focal_px` (pixels; None: `trajectory.DEFAULT_FOV_DEG`
    of horizontal field of view, `focal_px_for`). Add them to `__call__`'s root-relative
    poses for the camera-frame joints. The model places a person of the reference size
    (`trajectory.REFERENCE_HEIGHT_M`); `trajectory.scale_to_height` rescales for another.
    """
    x, (w, h) = _check_keypoints(keypoints_2d, image_size, chunk_size)
    focal_px = focal_px_for((w, h), focal_px)
    if chunk_size is not None:
      return Chunks(self, (w, h), chunk_size, poses=False, focal_px=focal_px).lift(
          x, progress=progress)[1]["root_3d"]
    rays = trajectory.rays_from_pixels(x, focal_px, (w / 2, h / 2))
    return self._predict("trajectory", rays, progress)[:, 0]

  def _predict(self, kind: str, x: np.ndarray, progress) -> np.ndarray:
    """One whole clip's model inputs (T, 17, 2) -> outputs (T, J', 3)."""
    predictor = self.predictor(min(self.batch_size, -(-x.shape[0] // 16) * 16), kind)
    return predictor.predict_sequences([x], progress=progress)[0]


class Chunks:
  """A clip lifted chunk by chunk, as far as its frames are known: poses and, given
  `focal_px`, the root trajectory.

  Frames [k C, (k + 1) C) are lifted from the frames [k C - pad, (k + 1) C + pad) of the
  clip (fewer at its ends): exactly the windows the whole clip gives them. `lift` takes
  the frames known so far and lifts every chunk not yet lifted whose windows they hold, so
  a clip can be lifted while it is still being detected (``Lifter(..., chunk_size=C)``
  runs the same chunks on a whole clip: the same values, bit for bit). Each chunk computes
  its own C windows only, in one compiled shape (C rounded up to 16).

  Args:
    lifter: the `Lifter`; image_size: (w, h) pixels of the keypoints' image.
    chunk_size: frames per chunk (C).
    poses: lift the root-relative poses (``poses_3d``, as `Lifter.__call__`).
    focal_px: the camera's focal length in pixels: also the roots (``root_3d``, as
      `Lifter.roots`; the checkpoint needs a trajectory model). None: no roots.
  """

  def __init__(self, lifter: Lifter, image_size, chunk_size: int, *, poses: bool = True,
               focal_px: float | None = None):
    self.image_size = check_image_size(image_size)
    if int(chunk_size) != chunk_size or chunk_size < 1:
      raise DataError(f"chunk_size must be a positive integer, got {chunk_size}")
    self.chunk, self.pad = int(chunk_size), lifter.pad
    self.focal_px = None if focal_px is None else focal_px_for(self.image_size, focal_px)
    self.done = 0  # frames lifted so far
    batch = min(lifter.batch_size, -(-self.chunk // 16) * 16)
    kinds = (["poses_3d"] if poses else []) + (["root_3d"] if focal_px is not None else [])
    self._predictors = {k: lifter.predictor(batch, "pose" if k == "poses_3d" else "trajectory")
                        for k in kinds}

  def warm_up(self) -> None:
    """Compiles the chunks' forward passes (the first `lift` would): call it in a thread."""
    x = np.zeros((self.chunk, 17, 2), np.float32)
    for predictor in self._predictors.values():
      predictor.predict_frames(x, np.arange(self.chunk))

  def lift(self, keypoints_2d, known: int | None = None, progress=None
           ) -> tuple[int, dict[str, np.ndarray]]:
    """Lifts the chunks whose windows the first `known` frames hold.

    Args:
      keypoints_2d: (>= known, 17, 2) pixels without NaN (filled), the clip's first frames.
      known: how many of them are final; None: all, and the clip ends there (its last
        chunks are lifted too).
      progress: optional callback with the number of frames lifted so far.
    Returns:
      (first, outputs): outputs of frames first .. first + K - 1, those this call lifted
      (K = 0 when no chunk was complete): ``poses_3d`` (K, 17, 3) float32 root-relative
      metres and/or ``root_3d`` (K, 3) float32 camera-frame metres.
    """
    x = np.asarray(keypoints_2d, np.float64)
    t = len(x) if known is None else int(known)
    first, out = self.done, {k: [] for k in self._predictors}
    while self.done < t and (known is None or self.done + self.chunk + self.pad <= t):
      start, stop = self.done, min(self.done + self.chunk, t)
      lo, hi = max(0, start - self.pad), min(t, stop + self.pad)
      for kind, predictor in self._predictors.items():
        y = predictor.predict_frames(self._inputs(kind, x[lo:hi]), np.arange(start - lo,
                                                                             stop - lo))
        out[kind].append(y if kind == "poses_3d" else y[:, 0])
      self.done = stop
      if progress is not None:
        progress(stop)
    empty = {"poses_3d": (0, 17, 3), "root_3d": (0, 3)}
    return first, {k: np.concatenate(v) if v else np.zeros(empty[k], np.float32)
                   for k, v in out.items()}

  def _inputs(self, kind: str, x: np.ndarray) -> np.ndarray:
    """(N, 17, 2) pixels -> the model's inputs: normalised screen coordinates, or rays."""
    w, h = self.image_size
    if kind == "poses_3d":
      return cameras.normalize_screen(x, w, h).astype(np.float32)
    return trajectory.rays_from_pixels(x, self.focal_px, (w / 2, h / 2))


def focal_px_for(image_size, focal_px: float | None = None, fov_deg: float | None = None
                 ) -> float:
  """The focal length (pixels) to use: `focal_px`, else from `fov_deg` (horizontal field of
  view, degrees), else from `trajectory.DEFAULT_FOV_DEG`. A DataError for bad values."""
  w = float(image_size[0])
  if focal_px is not None:
    if not (np.isfinite(focal_px) and focal_px > 0):
      raise DataError(f"the focal length must be positive (pixels), got {focal_px}")
    return float(focal_px)
  fov = trajectory.DEFAULT_FOV_DEG if fov_deg is None else float(fov_deg)
  if not 1.0 <= fov <= 170.0:
    raise DataError(f"the field of view must be in 1..170 degrees, got {fov}")
  return trajectory.focal_from_fov(w, fov)


def lift(keypoints_2d, image_size, checkpoint, *, batch_size: int = 1024, flip: bool = True,
         chunk_size: int | None = None) -> np.ndarray:
  """3D poses of every frame of a clip.

  Args:
    keypoints_2d: (T, 17, 2) pixels in the H36M-17 layout
      (`poseformer_jax.video.formats` maps the common layouts to it). NaN marks
      missing joints; they are interpolated along time first
      (`poseformer_jax.gaps.fill_gaps`).
      Any T >= 1 works, also shorter than the model's receptive field (the
      windows are edge-padded).
    image_size: (width, height) in pixels of the image the keypoints refer to.
    checkpoint: a checkpoint directory, ``pretrained:NAME``, the ``(model,
      params, config)`` triple from `poseformer_jax.load_checkpoint`, or a
      `Lifter` (for many clips: it keeps its compiled forward passes).
    batch_size: windows per forward pass (capped at the clip length rounded up
      to 16, so short clips do not compute padding).
    flip: test-time flip averaging (as the published results).
    chunk_size: if set, lift the clip in pieces of this many frames, each with
      ``pad = (F - 1) // 2`` frames of context on both sides (bounded memory
      for long clips). Every frame then sees exactly the window it sees when
      the whole clip is lifted at once, so the result is the same.
  Returns:
    (T, 17, 3) float32, camera-space metres, root-relative (pelvis = 0).
  Raises:
    DataError: bad shapes, non-positive image size, infinite values, or no
      usable frames. CheckpointError: unreadable checkpoint.
  """
  _check_keypoints(keypoints_2d, image_size, chunk_size)
  if int(batch_size) != batch_size or batch_size < 1:
    raise DataError(f"batch_size must be a positive integer, got {batch_size}")
  lifter = checkpoint if isinstance(checkpoint, Lifter) else Lifter(
      checkpoint, batch_size=batch_size, flip=flip)
  return lifter(keypoints_2d, image_size, chunk_size=chunk_size)


def _check_keypoints(keypoints_2d, image_size, chunk_size):
  """Validated, gap-filled (T, 17, 2) float64 pixels and (w, h)."""
  x = np.asarray(keypoints_2d, np.float64) if _is_numeric(keypoints_2d) else None
  if x is None or x.ndim != 3 or x.shape[1:] != (17, 2) or x.shape[0] < 1:
    shape = getattr(x, "shape", None) if x is not None else type(keypoints_2d).__name__
    raise DataError(f"keypoints_2d must have shape (T, 17, 2) with T >= 1 (H36M-17 pixels), "
                    f"got {shape}")
  size = check_image_size(image_size)
  if np.isnan(x).any():
    x, _ = gaps.fill_gaps(x, joint_names=skeleton.JOINT_NAMES)
  if not np.isfinite(x).all():
    raise DataError("keypoints_2d contain infinite values")
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    raise DataError(f"chunk_size must be a positive integer, got {chunk_size}")
  return x, size


def _is_numeric(a) -> bool:
  try:
    np.asarray(a, np.float64)
    return True
  except (TypeError, ValueError):
    return False


def check_image_size(image_size) -> tuple[float, float]:
  """(width, height) as positive finite floats (pixels); a DataError otherwise."""
  try:
    w, h = (float(v) for v in image_size)
  except (TypeError, ValueError):
    raise DataError(f"image_size must be (width, height), got {image_size!r}") from None
  if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
    raise DataError(f"image size must be positive, got {image_size!r} (width, height)")
  return w, h


def _resolve_trajectory(checkpoint, trajectory):
  """The (model, params, config) of the trajectory: `trajectory` itself when a triple, the
  checkpoint's ``trajectory/`` when True and the checkpoint is a path, else None."""
  if trajectory is False or trajectory is None:
    return None
  if isinstance(trajectory, (tuple, list)) and len(trajectory) == 3:
    return tuple(trajectory)
  if isinstance(checkpoint, (str, os.PathLike)):
    return load_trajectory(checkpoint)
  return None


def _resolve_checkpoint(checkpoint):
  if isinstance(checkpoint, (str, os.PathLike)):
    checkpoint = load_checkpoint(checkpoint)
  if isinstance(checkpoint, (tuple, list)) and len(checkpoint) == 3:
    model = checkpoint[0]
    if int(getattr(model, "num_joints", 17)) != 17:
      raise DataError(f"lift needs a 17-joint model, the checkpoint has {model.num_joints}")
    return tuple(checkpoint)
  raise DataError("checkpoint must be a directory, pretrained:NAME or the (model, params, "
                  f"config) triple from load_checkpoint, got {type(checkpoint).__name__}")
