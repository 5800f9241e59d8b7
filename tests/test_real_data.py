"""Real Human3.6M training mocap from ../shared/data/h36m (skipped when absent).

Nothing derived from the data is written outside pytest's temporary folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poseformer_jax.data import cameras, dataset, h36m, prepare_h36m, skeleton

SHARED_3D = (Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "h36m"
             / "data_3d_h36m_train.npz")

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not SHARED_3D.exists(), reason=f"real Human3.6M data not found at {SHARED_3D}"),
]

TRAIN_SUBJECTS = ["S1", "S5", "S6", "S7", "S8"]


@pytest.fixture(scope="module")
def prepared(real_h36m_root):
  """conftest's `real_h36m_root`: the shared 3D file and its prepared 2D gt (made once)."""
  return real_h36m_root


def test_prepare_layout(prepared):
  pos3d = h36m.read_positions_3d(prepared / h36m.FILE_3D)
  pos2d, meta = h36m.read_positions_2d(prepared / h36m.file_2d("gt"))
  assert meta == {"layout_name": "h36m", "num_joints": 17,
                  "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
  assert sorted(pos2d) == sorted(pos3d) == sorted(TRAIN_SUBJECTS)
  assert sum(len(a) for a in pos2d.values()) == 146
  assert "Discussion 2" not in pos2d["S5"] and "SittingDown 1" not in pos2d["S7"]
  frames = 0
  inside = total = 0
  for subject, actions in pos3d.items():
    assert list(pos2d[subject]) == list(actions)
    for action, world in actions.items():
      views = pos2d[subject][action]
      assert isinstance(views, list) and len(views) == 4
      frames += len(world)
      for c, px in enumerate(views):
        assert px.dtype == np.float32 and px.shape == (len(world), 17, 2)
        w, h = cameras.camera(subject, c).image_size
        inside += np.sum((px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h))
        total += px[..., 0].size
  assert frames == 366_100
  assert inside / total > 0.99                   # the subjects are in view of the cameras
  # one point by hand: S1, first action, camera 1, frame 100, head (mocap joint 15)
  action = next(iter(pos3d["S1"]))
  cam = cameras.camera("S1", 1)
  x = cameras.world_to_camera(pos3d["S1"][action][100, 15], cam.orientation, cam.translation)
  assert 2.0 < x[2] < 8.0
  np.testing.assert_allclose(pos2d["S1"][action][1][100, 10], cameras.project_camera(x, cam),
                             atol=1e-3)


def test_bone_lengths_constant_per_subject(prepared):
  pos3d = h36m.read_positions_3d(prepared / h36m.FILE_3D)
  means = {}
  for subject, actions in pos3d.items():
    bl = np.concatenate([skeleton.bone_lengths(skeleton.reduce_32_to_17(a.astype(np.float64)))
                         for a in actions.values()])
    assert np.ptp(bl, axis=0).max() < 1e-3, subject      # < 1 mm over all frames and actions
    left = bl[:, [j - 1 for j in skeleton.JOINTS_LEFT]]
    right = bl[:, [j - 1 for j in skeleton.JOINTS_RIGHT]]
    np.testing.assert_allclose(left, right, atol=1e-3)   # the skeleton is symmetric
    means[subject] = bl.mean(0)
    assert 0.35 < means[subject][1] < 0.55              # thigh length, metres
  assert np.ptp([m[1] for m in means.values()]) > 0.01  # subjects differ in size


def test_load_real_sequences(prepared):
  from poseformer_jax import config_lib
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints, cfg.subjects_train, cfg.subjects_test = str(prepared), "gt", "S1", "S8"
  cfg.actions = "Walking"
  seqs, info = dataset.load_sequences(cfg, "test")
  assert info.kps_left == skeleton.JOINTS_LEFT
  assert {s.subject for s in seqs} == {"S8"} and len(seqs) % 4 == 0 and seqs
  for s in seqs:
    assert s.action.startswith("Walking")
    np.testing.assert_array_equal(s.positions_3d[:, 0], 0)
    assert np.abs(s.keypoints_2d).max() < 1.2
    # the body is upright in every camera: head above (smaller image y than) the ankles
    assert (s.keypoints_2d[:, 10, 1] < s.keypoints_2d[:, [3, 6], 1].min(-1)).mean() > 0.95


SHARED_SH = SHARED_3D.with_name("data_2d_h36m_sh_pt_mpii_train.npz")
needs_sh = pytest.mark.skipif(not SHARED_SH.exists(), reason=f"SH detections not found at {SHARED_SH}")
LIMBS = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]   # hips, knees, ankles, shoulders, elbows, wrists


def _sh_config(subjects: str, actions: str = "*"):
  """The shared folder read as is: `_train` file names are found, nothing is written there."""
  from poseformer_jax import config_lib
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints, cfg.subjects_test, cfg.actions = (str(SHARED_3D.parent), "sh_pt_mpii",
                                                             subjects, actions)
  return cfg


@needs_sh
def test_sh_detections_sit_near_the_ground_truth():
  """Held-out S8: Stacked Hourglass detections mapped to H36M-17 against the projected mocap."""
  seqs, info = dataset.load_sequences(_sh_config("S8"), "test")
  assert info.kps_left == skeleton.JOINTS_LEFT and len(seqs) == 30 * 4
  pos3d = h36m.read_positions_3d(SHARED_3D, subjects=["S8"])["S8"]
  errors = []
  for s in seqs:
    gt = prepare_h36m.project_sequence(pos3d[s.action], "S8")[s.camera]
    px = cameras.unnormalize_screen(s.keypoints_2d.astype(np.float64), *s.image_size)
    assert px.shape == gt.shape
    errors.append(np.linalg.norm(px - gt, axis=-1))
  mean = np.concatenate(errors).mean(0)                 # (17,) mean pixel distance per joint
  assert (mean[LIMBS] > 3).all() and (mean[LIMBS] < 20).all(), mean
  assert 5 < mean[LIMBS].mean() < 20, mean
  assert 15 < mean[10] < 40, mean                        # head: ~30 px (README)
  assert mean[7] < 15 and mean[9] < 25, mean             # the two derived joints


@needs_sh
def test_sh_actions_without_mocap_are_skipped():
  seqs, _ = dataset.load_sequences(_sh_config("S7", "SittingDown"), "test")
  assert {s.action for s in seqs} == {"SittingDown"} and len(seqs) == 4   # no 'SittingDown 1' 3D
