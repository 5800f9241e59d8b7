"""The root trajectory: where the person is in the camera's space, from 2D rays alone.

The pose model answers root-relative poses. `TrajectoryNet` answers the other
half: the root joint's (pelvis) camera-frame position, in metres, for the
centre frame of the same kind of window.

Camera-independent by construction, so one model serves the four Human3.6M
cameras and a phone video:

* Input: rays (B, F, J, 2), the 2D keypoints as undistorted pinhole rays
  ``(x - cx) / fx, (y - cy) / fy`` (`rays_from_pixels`; Human3.6M's lens
  distortion undone by `cameras.pixels_to_rays`). No focal length, principal
  point or image size is left in them.
* Features (`window_features`): each frame's skeleton relative to its root,
  divided by the window's 2D size s (RMS distance of the joints from the root,
  averaged over the window); the root's motion relative to the centre frame
  over s; log(s_t / s). Neither the absolute size nor the position in the image
  reaches the network, so it cannot learn a depth prior of one camera's height
  and tilt: it learns how a 3D body of a given shape projects.
* Output (`decode`): the depth as ``Z = exp(a) / s`` (a: the network's log of
  depth x 2D size, which is the body's 3D extent seen from the camera), and the
  root's ray as the observed centre root ray plus a learned correction in units
  of s; ``X = u Z, Y = v Z``.

Training (``configs/h36m_trajectory.py``) adds a random rotation of the camera
about its centre to every window (`rotate_cameras`: the same homography on the
rays and rotation on the target), and weighs each sample's Euclidean error by
the inverse true depth (`root_loss`), as VideoPose3D does for its trajectory.

What no model sees: the subject's size. Everything scales together, so a person
x % larger than the reference is placed x % too near. Training therefore rescales each
subject's roots to the reference person (`REFERENCE_BONES_M`): a network that could
tell the training subjects apart by their motion would otherwise learn their sizes,
which do not carry over to new people. Given the person's height, `scale_to_height`
removes the rest of that error (`lift --height`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from poseformer_jax import model as model_lib

Dtype = Any

# log(Z * s) of a standing adult: s ~ 0.45 m / Z (RMS joint distance from the pelvis over
# depth); the network's output is added to it, so training starts at a plausible depth.
LOG_DEPTH_SIZE_PRIOR = float(np.log(0.45))
# The network's log-depth correction is clipped to +-this (a factor e^3 = 20 either way).
MAX_LOG_CORRECTION = 3.0
# Two tokens join the J joint tokens: the root's motion, and the log scale change.
EXTRA_TOKENS = 2
# The reference person a trajectory model places: training targets are rescaled so that
# every subject appears with this summed bone length (17-joint skeleton, metres; the mean
# of Human3.6M's S1, S5, S6 and S7, 4.146 m), see `dataset.trajectory_view`.
REFERENCE_BONES_M = 4.15
# That person's standing height: in the mocap the head joint stands 0.39 x the summed bone
# length above the lowest foot joint (S1-S8: 0.380-0.397), 1.62 m, and the top of the head
# is ~8 cm above the head joint. `scale_to_height` rescales roots for another height.
REFERENCE_HEIGHT_M = 1.70
# Horizontal field of view assumed when a video's focal length is not given: between a
# phone's main camera (65-75 degrees) and a webcam's or a telephoto clip's. Absolute depth
# scales with the focal length, so it is only as good as this guess (`lift --focal/--fov`).
DEFAULT_FOV_DEG = 60.0


def rays_from_pixels(keypoints_px: np.ndarray, focal_px, center_px) -> np.ndarray:
  """Pixels (..., 2) -> pinhole rays (..., 2), ``(x - c) / f``, float32 (no lens distortion)."""
  f = np.broadcast_to(np.asarray(focal_px, np.float64), (2,))
  c = np.asarray(center_px, np.float64)
  return ((np.asarray(keypoints_px, np.float64) - c) / f).astype(np.float32)


def focal_from_fov(width_px: float, fov_deg: float) -> float:
  """Focal length (pixels) of a camera `width_px` wide with horizontal field of view `fov_deg`."""
  return float(width_px) / 2.0 / float(np.tan(np.radians(fov_deg) / 2.0))


def window_features(rays: jax.Array, root_joint: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The network's camera-independent view of a window of rays.

  rays (B, F, J, 2) -> (features (B, F, J + 2, 2), s (B,), centre root ray (B, 2)):
  tokens 0..J-1 the root-relative skeleton over s; token J the root's ray
  minus the centre frame's, over s; token J+1 (log(s_t / s), 0).
  """
  rays = rays.astype(jnp.float32)
  b, f = rays.shape[:2]
  root = rays[:, :, root_joint]                                   # (B, F, 2)
  rel = rays - root[:, :, None]
  size_t = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(rel), -1), -1)) + 1e-6  # (B, F)
  size = jnp.mean(size_t, axis=1)                                  # (B,)
  centre = root[:, (f - 1) // 2]                                   # (B, 2)
  inv = (1.0 / size)[:, None, None]
  motion = (root - centre[:, None]) * inv                          # (B, F, 2)
  log_scale = jnp.stack([jnp.log(size_t / size[:, None]), jnp.zeros((b, f))], -1)
  feats = jnp.concatenate([rel * inv[..., None], motion[:, :, None], log_scale[:, :, None]], 2)
  return feats, size, centre


def decode(raw: jax.Array, size: jax.Array, centre: jax.Array) -> jax.Array:
  """Network output (B, 3), window size s (B,), centre root ray (B, 2) -> root (B, 3) metres."""
  raw = raw.astype(jnp.float32)
  log_zs = jnp.clip(raw[:, 2], -MAX_LOG_CORRECTION, MAX_LOG_CORRECTION) + LOG_DEPTH_SIZE_PRIOR
  depth = jnp.exp(log_zs) / size
  ray = centre + raw[:, :2] * size[:, None]
  return jnp.concatenate([ray * depth[:, None], depth[:, None]], axis=-1)


class TrajectoryNet(nn.Module):
  """Rays of an F-frame window -> the root's camera-frame position at its centre frame.

  A PoseFormerV2 trunk (spatial branch over the f centre frames, DCT branch
  over all F, mixed blocks) on `window_features`' J + 2 tokens per frame, with
  a 3-number head read by `decode`. Fields as `model.PoseFormerV2` (its
  ``embed_dim_ratio`` is per token: the width is (J + 2) x it).

  Call: ``model.apply({'params': p}, rays)`` with rays (B, F, J, 2) -> (B, 1, 1, 3)
  metres, camera frame (x right, y down, z forward), not root-relative.
  """

  num_frames: int = 81
  kept_frames: int = 1
  kept_coeffs: int = 3
  num_joints: int = 17
  embed_dim_ratio: int = 8
  depth: int = 4
  num_heads: int = 8
  mlp_ratio: float = 2.0
  qkv_bias: bool = True
  drop_path_rate: float = 0.1
  dtype: Dtype = jnp.float32
  spatial_attention: str = "dot"
  mixed_attention: str = "dot"
  root_joint: int = 0

  kind = "trajectory"
  output_joints = 1

  @nn.compact
  def __call__(self, rays: jax.Array, deterministic: bool = True) -> jax.Array:
    b, f, j, c = rays.shape
    if (f, j, c) != (self.num_frames, self.num_joints, 2):
      raise ValueError(
          f"expected rays (B, {self.num_frames}, {self.num_joints}, 2), got {rays.shape}")
    feats, size, centre = window_features(rays, self.root_joint)
    trunk = model_lib.PoseFormerV2(
        num_frames=self.num_frames, kept_frames=self.kept_frames, kept_coeffs=self.kept_coeffs,
        num_joints=self.num_joints + EXTRA_TOKENS, embed_dim_ratio=self.embed_dim_ratio,
        depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
        qkv_bias=self.qkv_bias, drop_path_rate=self.drop_path_rate, dtype=self.dtype,
        spatial_attention=self.spatial_attention, mixed_attention=self.mixed_attention,
        out_joints=1, name="trunk")
    raw = trunk(feats, deterministic)[:, 0, 0]                       # (B, 3)
    return decode(raw, size, centre)[:, None, None, :]


# -- training ----------------------------------------------------------------------


def rotation_matrices(angles: jax.Array) -> jax.Array:
  """(B, 3) radians (about the camera's x: tilt, y: pan, z: roll) -> (B, 3, 3), R = Rz Ry Rx."""
  cx, cy, cz = (jnp.cos(angles[:, i]) for i in range(3))
  sx, sy, sz = (jnp.sin(angles[:, i]) for i in range(3))
  one, zero = jnp.ones_like(cx), jnp.zeros_like(cx)
  rx = jnp.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
  ry = jnp.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
  rz = jnp.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
  return rz @ ry @ rx


def rotate_cameras(rays: jax.Array, roots: jax.Array, rng: jax.Array,
                   max_degrees: tuple[float, float, float]) -> tuple[jax.Array, jax.Array]:
  """Each window seen by its camera turned about its centre by a random rotation.

  rays (B, F, J, 2), roots (B, 1, 1, 3) metres; angles uniform in +-`max_degrees`
  (tilt, pan, roll). A pure rotation maps rays by the homography R (u, v, 1) and
  the 3D target by R, so GT and detected 2D are both exact. Returns the pair rotated.
  """
  if not any(float(a) > 0 for a in max_degrees):
    return rays, roots
  b = rays.shape[0]
  limit = jnp.radians(jnp.asarray(max_degrees, jnp.float32))
  rot = rotation_matrices(jax.random.uniform(rng, (b, 3), minval=-1.0, maxval=1.0) * limit)
  hom = jnp.concatenate([rays, jnp.ones(rays.shape[:-1] + (1,), rays.dtype)], -1)
  hom = jnp.einsum("bij,bfkj->bfki", rot, hom)
  rays = hom[..., :2] / jnp.maximum(hom[..., 2:], 1e-3)
  return rays, jnp.einsum("bij,bfkj->bfki", rot, roots)


def root_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean Euclidean root error over the true depth (dimensionless; VideoPose3D's weighting).

  pred, target (B, 1, 1, 3) metres, camera frame. A relative error: a metre off at
  5 m counts as much as 20 cm at 1 m, so near and far people weigh alike.
  """
  pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
  sq = jnp.sum(jnp.square(pred - target), axis=-1)
  zero = sq == 0
  dist = jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))
  return jnp.mean(dist / jnp.maximum(target[..., 2], 1e-3))


# -- using it --------------------------------------------------------------------------


def scale_to_height(roots: np.ndarray, height_m: float,
                    reference_m: float = REFERENCE_HEIGHT_M) -> np.ndarray:
  """Roots (..., 3) placed for a person `height_m` tall instead of the model's reference.

  The whole scene scales with the person (the rays stay the same), so the root's
  camera-frame position scales by height / reference.
  """
  return np.asarray(roots) * (float(height_m) / float(reference_m))
