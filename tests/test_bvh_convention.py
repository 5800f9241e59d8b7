"""BVH conventions checked against hand-derived values, not only against our own reader.

`test_video.py` writes a BVH and reads it back with `bvh.read_bvh_positions`; an axis
or sign error made the same way on both sides would pass there. Here:

* a hand-written BVH file (the format's rules: channels compose in the order listed,
  right-handed rotations in degrees, a child at parent + R_parent @ OFFSET) is read by
  `bvh.read_bvh`, and its joint positions are the ones worked out by hand;
* `bvh.write_bvh` is given a hand-made Human3.6M T-pose (camera space, metres: x right,
  y down, z away from the camera; a person facing the camera has their left at +x) and
  moves with known answers, and the file's own text is parsed here: the root channel is
  the pelvis in BVH axes (x, -y, -z), OFFSETs are the T-pose bones (person's left = +X,
  up = +Y), and each moved bone shows up as the one expected ZXY rotation.
"""

from __future__ import annotations

import numpy as np
import pytest

from poseformer_jax.video import bvh

HAND_WRITTEN = """\
HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT chest
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT hand
    {
      OFFSET 1 0 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
MOTION
Frames: 5
Frame Time: 0.04
1 2 3 0 0 0 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0 0 0 0
0 0 0 90 90 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 90 0 0 0
0 0 0 0 0 0 -90 0 0 0 0 0
"""

# (hips, chest, hand) per frame, by hand. Rz(90): x -> y, y -> -x. Rx(90): y -> z.
# Ry(90): x -> -z. R = Rz Rx Ry for "Zrotation Xrotation Yrotation".
HAND_POSITIONS = [
    [(1, 2, 3), (1, 4, 3), (2, 4, 3)],     # rest, root moved to (1, 2, 3)
    [(0, 0, 0), (-2, 0, 0), (-2, 1, 0)],   # root Z +90: the chest bone points to -x
    [(0, 0, 0), (0, 0, 2), (0, 1, 2)],     # root Z 90 then X 90 (as Rx Rz: (-2, 0, 0))
    [(0, 0, 0), (0, 2, 0), (0, 2, -1)],    # chest Y +90 swings the hand bone to -z
    [(0, 0, 0), (0, 2, 0), (0, 1, 0)],     # chest Z -90 swings it to -y
]


def test_reader_on_a_hand_written_file(tmp_path):
  path = tmp_path / "hand.bvh"
  path.write_text(HAND_WRITTEN)
  names, pos, frame_time = bvh.read_bvh(path)
  assert names == ["hips", "chest", "hand"] and frame_time == 0.04
  np.testing.assert_allclose(pos, np.array(HAND_POSITIONS, float), atol=1e-9)


# A T-pose in camera space (metres), pelvis 3 m in front of the camera: bone vectors
# (child - parent) by joint, H36M order; down = +y, the person's left = +x.
T_POSE_BONES = {1: (-0.1, 0, 0), 2: (0, 0.4, 0), 3: (0, 0.4, 0), 4: (0.1, 0, 0),
                5: (0, 0.4, 0), 6: (0, 0.4, 0), 7: (0, -0.2, 0), 8: (0, -0.25, 0),
                9: (0, -0.1, 0), 10: (0, -0.1, 0), 11: (0.15, 0, 0), 12: (0.25, 0, 0),
                13: (0.25, 0, 0), 14: (-0.15, 0, 0), 15: (-0.25, 0, 0), 16: (-0.25, 0, 0)}
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
PELVIS = np.array([0.1, 0.2, 3.0])
S = np.sqrt(0.5)


def _pose(bones: dict) -> np.ndarray:
  p = np.zeros((17, 3))
  p[0] = PELVIS
  for j in range(1, 17):
    p[j] = p[PARENTS[j]] + np.asarray(bones[j], float)
  return p


def _frames() -> np.ndarray:
  forearm_up = {**T_POSE_BONES, 13: (0, -0.25, 0)}            # left forearm up (camera -y)
  shin_forward = {**T_POSE_BONES, 3: (0, 0.4 * S, -0.4 * S)}  # right shin 45 deg to the camera
  # Turned by +90 deg about BVH Y (x -> -z, z -> x), in camera space (x, y, z) -> (-z, y, x):
  # the left hip ends up farther from the camera.
  turned = {j: (-b[2], b[1], b[0]) for j, b in T_POSE_BONES.items()}
  return np.stack([_pose(b) for b in (T_POSE_BONES, forearm_up, shin_forward, turned)])


def _parse(text: str):
  """This test's own reading of the file: {joint: OFFSET}, {joint: channel names},
  {joint: first column}, motion (T, columns)."""
  lines = [ln.split() for ln in text.splitlines()]
  offsets, channels, column, col, joint = {}, {}, {}, 0, None
  motion_at = next(i for i, ln in enumerate(lines) if ln == ["MOTION"])
  for ln in lines[:motion_at]:
    if ln[0] in ("ROOT", "JOINT"):
      joint = ln[1]
    elif ln[0] == "End":
      joint = None
    elif ln[0] == "OFFSET" and joint is not None:
      offsets[joint] = tuple(float(v) for v in ln[1:])
    elif ln[0] == "CHANNELS":
      channels[joint], column[joint] = ln[2:], col
      col += int(ln[1])
  motion = np.array([[float(v) for v in ln] for ln in lines[motion_at + 3:] if ln])
  assert motion.shape[1] == col
  return offsets, channels, column, motion


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  path = tmp_path_factory.mktemp("bvh") / "t.bvh"
  bvh.write_bvh(path, _frames(), fps=25)
  return _parse(path.read_text())


def test_written_hierarchy_channels_and_rest_offsets(written):
  offsets, channels, _, _ = written
  assert channels["pelvis"] == ["Xposition", "Yposition", "Zposition",
                                "Zrotation", "Xrotation", "Yrotation"]
  assert all(c == ["Zrotation", "Xrotation", "Yrotation"] for j, c in channels.items()
             if j != "pelvis")
  # T-pose rest: Y up, the person's left at +X, bone lengths as given.
  want = {"right_hip": (-0.1, 0, 0), "right_knee": (0, -0.4, 0), "left_hip": (0.1, 0, 0),
          "spine": (0, 0.2, 0), "head": (0, 0.1, 0), "left_shoulder": (0.15, 0, 0),
          "left_elbow": (0.25, 0, 0), "left_wrist": (0.25, 0, 0), "right_shoulder": (-0.15, 0, 0),
          "right_wrist": (-0.25, 0, 0), "pelvis_to_right_hip": (0, 0, 0)}
  for joint, offset in want.items():
    np.testing.assert_allclose(offsets[joint], offset, atol=1e-6, err_msg=joint)


@pytest.mark.parametrize("frame, moved", [
    (0, {}),                                       # the rest pose: no rotation anywhere
    (1, {"left_elbow": (90, 0, 0)}),                  # +X to +Y: +90 about Z
    (2, {"right_knee": (0, -45, 0)}),                  # -Y to (0, -s, +s): -45 about X
    (3, {"pelvis": (0, 0, 90)}),                   # the whole body: +90 about Y at the root
])
def test_written_motion_channels(written, frame, moved):
  _, channels, column, motion = written
  row = motion[frame]
  for joint, c in column.items():
    rot = row[c + 3:c + 6] if joint == "pelvis" else row[c:c + 3]
    np.testing.assert_allclose(rot, moved.get(joint, (0, 0, 0)), atol=1e-3,
                               err_msg=f"frame {frame} {joint} (Z, X, Y)")
  np.testing.assert_allclose(row[:3], PELVIS * (1, -1, -1), atol=1e-6,  # BVH (x, -y, -z)
                             err_msg=f"frame {frame} root position")
