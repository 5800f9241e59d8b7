"""A small synthetic Human3.6M look-alike, in exactly the VideoPose3D file formats.

    python -m poseformer_jax.data.synthetic --root DIR

writes `DIR/data_3d_h36m.npz` (32 joints, world metres, 50 fps),
`DIR/data_2d_h36m_gt.npz` (projected through the real cameras by
`prepare_h36m`) and `DIR/data_2d_h36m_cpn_ft_h36m_dbb.npz` (the same plus
Gaussian pixel noise, standing in for detections). Bodies have typical
Human3.6M bone lengths (scaled per subject), walk-like limb swings, and walk
on a circle near the world origin, where the Human3.6M cameras look.
For tests and the embedded default run; not a substitute for real data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from absl import flags

from poseformer_jax import cli
from poseformer_jax.data import h36m
from poseformer_jax.data import prepare_h36m
from poseformer_jax.data import skeleton
from poseformer_jax.data.selection import parse_list
from poseformer_jax.errors import DataError

DEFAULT_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
ACTIONS = ("Directions 1", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
           "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
           "WalkTogether")
CPN_FILE = h36m.file_2d("cpn_ft_h36m_dbb")
FPS = 50.0

# Typical adult bone lengths, metres (body frame: x = subject's left, y = forward, z = up).
_HIP_HALF, _THIGH, _SHIN = 0.13, 0.44, 0.45
_SPINE, _THORAX, _NECK, _HEAD = 0.23, 0.25, 0.12, 0.115
_SHOULDER_HALF, _UPPER_ARM, _FOREARM = 0.15, 0.28, 0.25


def _rot_x(angle: np.ndarray, v) -> np.ndarray:
  """Rotates the fixed vector v (3,) about the body's lateral x axis by angle (T,) -> (T, 3)."""
  c, s = np.cos(angle), np.sin(angle)
  return np.stack([np.full_like(angle, v[0]), c * v[1] - s * v[2], s * v[1] + c * v[2]], -1)


def _body_pose(t: np.ndarray, p: dict, scale: float) -> np.ndarray:
  """(T,) seconds -> (T, 17, 3) body-frame joints (metres), pelvis above the origin."""
  phase = 2 * np.pi * p["cadence"] * t + p["phase"]
  swing = p["leg_amp"] * np.sin(phase)
  knee = lambda ph: p["knee_amp"] * np.clip(np.sin(ph + 0.8), 0, None) + 0.05
  lean = p["lean"] + 0.03 * np.sin(2 * phase)
  raise_ = p["arm_raise"] * (0.5 + 0.5 * np.sin(0.7 * phase))   # both arms forward/up
  zero = np.zeros_like(t)
  J = np.zeros(t.shape + (skeleton.NUM_JOINTS, 3))
  L = lambda v: np.asarray(v) * scale
  J[:, 0] = np.stack([zero, zero, zero + 0.92 * scale + 0.015 * np.cos(2 * phase)], -1)
  for hip, kn, an, side, sw in ((1, 2, 3, -1, -swing), (4, 5, 6, 1, swing)):
    J[:, hip] = J[:, 0] + L([side * _HIP_HALF, 0, 0])
    J[:, kn] = J[:, hip] + _rot_x(sw, L([0, 0, -_THIGH]))
    J[:, an] = J[:, kn] + _rot_x(sw - knee(phase if side > 0 else phase + np.pi), L([0, 0, -_SHIN]))
  J[:, 7] = J[:, 0] + _rot_x(-lean, L([0, 0, _SPINE]))
  J[:, 8] = J[:, 7] + _rot_x(-lean, L([0, 0, _THORAX]))
  J[:, 9] = J[:, 8] + _rot_x(-lean, L([0, 0.45 * _NECK, 0.9 * _NECK]))
  J[:, 10] = J[:, 9] + _rot_x(-lean + 0.2 * np.sin(0.3 * phase), L([0, 0, _HEAD]))
  for sh, el, wr, side, a in ((11, 12, 13, 1, raise_ - 0.6 * swing),
                                    (14, 15, 16, -1, raise_ + 0.6 * swing)):
    J[:, sh] = J[:, 8] + L([side * _SHOULDER_HALF, 0, -0.02])
    J[:, el] = J[:, sh] + _rot_x(a, L([side * 0.03, 0, -_UPPER_ARM]))
    J[:, wr] = J[:, el] + _rot_x(a + p["elbow"], L([0, 0, -_FOREARM]))
  return J


def _to_32(j17: np.ndarray) -> np.ndarray:
  """(T, 17, 3) -> (T, 32, 3): dropped mocap joints sit at (or near) their kept ancestor."""
  out = np.zeros(j17.shape[:-2] + (skeleton.NUM_JOINTS_32, 3))
  out[..., skeleton.KEPT_32, :] = j17
  kept = set(skeleton.KEPT_32)
  for j in skeleton.REMOVED_32:  # parents precede children, so ancestors are filled first
    parent = skeleton.PARENTS_32[j]
    out[..., j, :] = out[..., parent, :] + (0.0 if parent in kept and j in (11, 16, 24) else 0.04)
  return out


def motion(frames: int, rng: np.random.Generator, scale: float) -> np.ndarray:
  """One smooth action: (frames, 32, 3) world metres, 50 fps, around the origin."""
  p = dict(cadence=rng.uniform(0.6, 1.0), phase=rng.uniform(0, 2 * np.pi),
           leg_amp=rng.uniform(0.1, 0.45), knee_amp=rng.uniform(0.3, 0.8),
           lean=rng.uniform(-0.05, 0.15), arm_raise=rng.uniform(0.0, 1.2),
           elbow=rng.uniform(0.1, 0.6))
  t = np.arange(frames) / FPS
  body = _body_pose(t, p, scale)
  radius, speed = rng.uniform(0.3, 1.2), rng.uniform(0.15, 0.5) * rng.choice([-1, 1])
  angle = rng.uniform(0, 2 * np.pi) + speed * t
  heading = angle + np.sign(speed) * np.pi / 2          # tangent to the circle
  c, s = np.cos(heading - np.pi / 2), np.sin(heading - np.pi / 2)   # body +y -> heading
  rot = np.stack([np.stack([c, -s, 0 * c], -1), np.stack([s, c, 0 * c], -1),
                  np.stack([0 * c, 0 * c, 1 + 0 * c], -1)], -2)      # (T, 3, 3)
  world = np.einsum("tij,tkj->tki", rot, body)
  world[..., 0] += (radius * np.cos(angle))[:, None]
  world[..., 1] += (radius * np.sin(angle))[:, None]
  return _to_32(world).astype(np.float32)


def make_positions_3d(subjects=DEFAULT_SUBJECTS, actions_per_subject: int = 3,
                      frames: int = 400, seed: int = 0) -> dict:
  """{subject: {action: (frames, 32, 3) float32 world metres}}; deterministic in `seed`."""
  out = {}
  for i, subject in enumerate(subjects):
    rng = np.random.default_rng([seed, i])
    scale = rng.uniform(0.92, 1.08)
    names = sorted(rng.choice(len(ACTIONS), size=min(actions_per_subject, len(ACTIONS)),
                              replace=False))
    out[subject] = {ACTIONS[a]: motion(frames, rng, scale) for a in names}
  return out


def add_noise(positions_2d: dict, sigma_px: float, seed: int) -> dict:
  """Copy of a 2D dict with Gaussian pixel noise (float32)."""
  rng = np.random.default_rng(seed)
  return {s: {a: [(v + rng.normal(0, sigma_px, v.shape)).astype(np.float32) for v in views]
              for a, views in acts.items()} for s, acts in positions_2d.items()}


def write_h36m(root: str | os.PathLike, subjects=DEFAULT_SUBJECTS, actions_per_subject: int = 3,
               frames: int = 400, seed: int = 0, noise_px: float = 1.0,
               overwrite: bool = False) -> dict[str, Path]:
  """Writes the three synthetic files into `root` (created if needed).

  Args:
    subjects: names with Human3.6M calibration (S1, S5, S6, S7, S8, S9, S11),
      a sequence or a comma-separated string.
    actions_per_subject, frames: size; frames at 50 fps.
    seed: everything is deterministic in it.
    noise_px: std of the Gaussian noise of the 'cpn' copy, pixels.
    overwrite: replace existing files (DataError otherwise).
  Returns:
    {'3d': path, 'gt': path, 'cpn_ft_h36m_dbb': path}.
  """
  if isinstance(subjects, str):
    subjects = parse_list(subjects)
  root = Path(root)
  paths = {"3d": root / h36m.FILE_3D, "gt": root / h36m.file_2d("gt"),
           "cpn_ft_h36m_dbb": root / CPN_FILE}
  existing = [str(p) for p in paths.values() if p.exists()]
  if existing and not overwrite:
    raise DataError(f"{existing[0]}: already exists (synthetic data never overwrites without "
                    "overwrite=True)")
  root.mkdir(parents=True, exist_ok=True)
  pos3d = make_positions_3d(subjects, actions_per_subject, frames, seed)
  pos2d = prepare_h36m.project_positions(pos3d)
  tmp = paths["3d"].with_name(paths["3d"].name + ".tmp.npz")
  np.savez_compressed(tmp, positions_3d=pos3d)
  os.replace(tmp, paths["3d"])
  prepare_h36m.save_2d(paths["gt"], pos2d)
  prepare_h36m.save_2d(paths["cpn_ft_h36m_dbb"], add_noise(pos2d, noise_px, seed + 1))
  return paths


def writer_flags(subjects, frames: int, frames_help: str) -> flags.FlagValues:
  """Flags the synthetic writers share: --root, --subjects, --frames, --seed, --overwrite."""
  fv = flags.FlagValues()
  flags.DEFINE_string("root", None, "Output folder (created if needed).", flag_values=fv)
  flags.DEFINE_string("subjects", ",".join(subjects), "Comma-separated subjects.", flag_values=fv)
  flags.DEFINE_integer("frames", frames, frames_help, flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Everything is deterministic in it.", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace existing files.", flag_values=fv)
  return fv


def _flags() -> flags.FlagValues:
  fv = writer_flags(DEFAULT_SUBJECTS, 400, "Frames per action (50 fps).")
  flags.DEFINE_integer("actions-per-subject", 3, "Actions per subject.", flag_values=fv)
  return fv


def main(argv=None) -> int:
  """Command line (see the module docstring); `argv` without the program name."""
  return cli.write_command(_flags(), argv, __doc__, lambda fv: write_h36m(
      fv.root, fv.subjects, fv["actions-per-subject"].value, fv.frames, fv.seed,
      overwrite=fv.overwrite))


if __name__ == "__main__":
  sys.exit(main())
