"""2D layouts: a hand-made 16-joint Stacked Hourglass (sh_mpii16) file read as Human3.6M-17."""

from __future__ import annotations

import numpy as np
import pytest

from poseformer_jax import config_lib
from poseformer_jax.data import cameras, dataset, h36m, prepare_h36m, skeleton, synthetic
from poseformer_jax.data import keypoint_layouts as layouts
from poseformer_jax.errors import DataError

SH = layouts.SH_MPII16_JOINTS
# Detector joint -> the Human3.6M joint it is (the detector's "Spine" is not Human3.6M's spine).
SH_AS_H36M = {"RFoot": "right_ankle", "RKnee": "right_knee", "RHip": "right_hip",
              "LHip": "left_hip", "LKnee": "left_knee", "LFoot": "left_ankle", "Hip": "pelvis",
              "Thorax": "thorax", "Head": "head", "RWrist": "right_wrist",
              "RElbow": "right_elbow", "RShoulder": "right_shoulder",
              "LShoulder": "left_shoulder", "LElbow": "left_elbow", "LWrist": "left_wrist"}
SPINE_OFFSET_PX = np.array([0.0, -40.0])   # where an MPII detector puts its "Spine": higher up


def sh_metadata(**overrides) -> dict:
  meta = {"layout_name": "sh_mpii16", "num_joints": 16, "joint_names": list(SH),
          "keypoints_symmetry": [list(layouts.SH_MPII16_LEFT), list(layouts.SH_MPII16_RIGHT)]}
  meta.update(overrides)
  return meta


def to_sh(kps17: np.ndarray) -> np.ndarray:
  """Ground-truth (..., 17, 2) -> what a perfect sh_mpii16 detector would report (..., 16, 2)."""
  out = np.empty(kps17.shape[:-2] + (16, 2), kps17.dtype)
  for k, name in enumerate(SH):
    out[..., k, :] = (kps17[..., skeleton.JOINT_NAMES.index("thorax"), :] + SPINE_OFFSET_PX
                      if name == "Spine" else kps17[..., skeleton.JOINT_NAMES.index(SH_AS_H36M[name]), :])
  return out


@pytest.fixture
def sh_root(tmp_path):
  """S1 'Walking' (30 frames) mocap, its gt 2D, and the same 2D as a tiny sh_mpii16 file that
  also holds an action without mocap ('Discussion 2', skipped)."""
  rng = np.random.default_rng(0)
  pos3d = {"S1": {"Walking": synthetic.motion(30, rng, 1.0)}}
  np.savez(tmp_path / h36m.FILE_3D, positions_3d=pos3d)
  gt = prepare_h36m.project_positions(pos3d)
  prepare_h36m.save_2d(tmp_path / h36m.file_2d("gt"), gt)
  sh = {"S1": {a: [to_sh(v) for v in gt["S1"]["Walking"]] for a in ("Walking", "Discussion 2")}}
  np.savez(tmp_path / h36m.file_2d("sh_pt_mpii"), positions_2d=sh, metadata=sh_metadata())
  return tmp_path


def data_cfg(root, keypoints):
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints, cfg.subjects_train = str(root), keypoints, "S1"
  return cfg


def test_mapping_table_matches_the_joint_names():
  for j, source in enumerate(layouts.SH_MPII16_SOURCE):
    if source is None:
      assert skeleton.JOINT_NAMES[j] in ("spine", "neck")
    else:
      assert SH_AS_H36M[SH[source]] == skeleton.JOINT_NAMES[j]
  assert sorted(s for s in layouts.SH_MPII16_SOURCE if s is not None) == sorted(
      set(range(16)) - {SH.index("Spine")})
  assert 0.3 < layouts.NECK_NOSE_FRACTION < 0.6 and 0.3 < layouts.SPINE_FRACTION < 0.6


def test_flip_commutes_with_the_mapping():
  """Mirroring detector joints (with the file's symmetry) then mapping == mapping then mirroring."""
  x = np.random.default_rng(1).normal(size=(5, 16, 2)).astype(np.float32)
  flipped_sh = skeleton.flip_2d(x, layouts.SH_MPII16_LEFT, layouts.SH_MPII16_RIGHT)
  np.testing.assert_allclose(layouts.sh_mpii16_to_h36m(flipped_sh),
                             skeleton.flip_2d(layouts.sh_mpii16_to_h36m(x)), atol=1e-6)
  for left, right in zip(layouts.SH_MPII16_LEFT, layouts.SH_MPII16_RIGHT):
    assert SH[left] == "L" + SH[right][1:]


def test_sh_file_loads_as_17_joints(sh_root):
  seqs, info = dataset.load_sequences(data_cfg(sh_root, "sh_pt_mpii"), "train")
  ref, _ = dataset.load_sequences(data_cfg(sh_root, "gt"), "train")
  assert info.kps_left == skeleton.JOINTS_LEFT and info.kps_right == skeleton.JOINTS_RIGHT
  assert [s.action for s in seqs] == ["Walking"] * 4 and [s.camera for s in seqs] == [0, 1, 2, 3]
  for s, r in zip(seqs, ref):
    assert s.keypoints_2d.shape == (30, 17, 2) and s.keypoints_2d.dtype == np.float32
    np.testing.assert_array_equal(s.positions_3d, r.positions_3d)
    px, gt = (cameras.unnormalize_screen(k.astype(np.float64), *s.image_size)
              for k in (s.keypoints_2d, r.keypoints_2d))
    direct = [j for j, src in enumerate(layouts.SH_MPII16_SOURCE) if src is not None]
    np.testing.assert_allclose(px[:, direct], gt[:, direct], atol=1e-3)
    # derived joints: on the hip-thorax and thorax-head segments, at the measured fractions
    np.testing.assert_allclose(px[:, 7], gt[:, 0] + layouts.SPINE_FRACTION * (gt[:, 8] - gt[:, 0]),
                               atol=1e-3)
    np.testing.assert_allclose(
        px[:, 9], gt[:, 8] + layouts.NECK_NOSE_FRACTION * (gt[:, 10] - gt[:, 8]), atol=1e-3)


@pytest.mark.parametrize("meta, message", [
    (sh_metadata(keypoints_symmetry=[[2, 1, 0, 12, 11, 10], [3, 4, 5, 13, 14, 15]]),
     "keypoints_symmetry .* is not that of layout 'sh_mpii16'"),
    (sh_metadata(joint_names=list(reversed(SH))), "joint_names .* differ from layout"),
    (sh_metadata(num_joints=17), "metadata says 17 joints, expected 16 for layout 'sh_mpii16'"),
    (sh_metadata(layout_name="coco"), "unknown 2D layout_name 'coco'"),
    (sh_metadata(layout_name="h36m"), "metadata says 16 joints, expected 17"),
])
def test_inconsistent_layout_metadata_is_refused(sh_root, meta, message):
  path = sh_root / h36m.file_2d("sh_pt_mpii")
  data = h36m.read_positions_2d(path)[0]
  np.savez(path, positions_2d=data, metadata=meta)
  with pytest.raises(DataError, match=message):
    dataset.load_sequences(data_cfg(sh_root, "sh_pt_mpii"), "train")


def test_wrong_joint_count_in_an_array(sh_root):
  path = sh_root / h36m.file_2d("sh_pt_mpii")
  data = h36m.read_positions_2d(path)[0]
  data["S1"]["Walking"][3] = data["S1"]["Walking"][3][:, :15]
  np.savez(path, positions_2d=data, metadata=sh_metadata())
  with pytest.raises(DataError, match="S1 'Walking' camera 3 has 15 joints, expected 16"):
    dataset.load_sequences(data_cfg(sh_root, "sh_pt_mpii"), "train")
