"""Human3.6M data layer: skeleton, flips, cameras, safe npz loading, the loader, prepare, TFDS.

Custom and broken files, frame-count rules and the synthetic data: `test_h36m_files.py`.
"""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax.data import cameras, dataset, h36m, prepare_h36m, safe_npz, selection, skeleton
from poseformer_jax.errors import ConfigError, DataError

from conftest import require

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------ skeleton

def test_joint_reduction_matches_facts():
  assert skeleton.REMOVED_32 == (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
  assert skeleton.KEPT_32 == (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
  x = np.arange(32 * 3, dtype=np.float32).reshape(1, 32, 3)
  y = skeleton.reduce_32_to_17(x)
  assert y.shape == (1, 17, 3)
  np.testing.assert_array_equal(y[0, :, 0], np.array(skeleton.KEPT_32) * 3)


def test_skeleton_parents_and_symmetry():
  assert skeleton.PARENTS[11] == skeleton.PARENTS[14] == 8          # shoulders hang from the thorax
  assert skeleton.JOINTS_LEFT == (4, 5, 6, 11, 12, 13)
  assert skeleton.JOINTS_RIGHT == (1, 2, 3, 14, 15, 16)
  for l, r in zip(skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT):
    assert skeleton.JOINT_NAMES[l] == skeleton.JOINT_NAMES[r].replace("right", "left")
    # partners hang from partners (or from the same centre joint)
    pl, pr = skeleton.PARENTS[l], skeleton.PARENTS[r]
    assert pl == pr or (pl, pr) in zip(skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)
  # the kept 32-joint parents, re-wired, give PARENTS (shoulders through the thorax)
  kept = list(skeleton.KEPT_32)
  for j17, j32 in enumerate(kept[1:], start=1):
    p = skeleton.PARENTS_32[j32]
    while p not in kept:
      p = skeleton.PARENTS_32[p]
    expected = skeleton.PARENTS[j17]
    assert kept.index(p) == expected or j17 in (11, 14)


def test_flip_2d_values():
  x = RNG.normal(size=(3, 17, 2)).astype(np.float32)
  y = skeleton.flip_2d(x)
  np.testing.assert_array_equal(y[:, 4], x[:, 1] * [-1, 1])      # L hip <- mirrored R hip
  np.testing.assert_array_equal(y[:, 16], x[:, 13] * [-1, 1])    # R wrist <- mirrored L wrist
  np.testing.assert_array_equal(y[:, 0], x[:, 0] * [-1, 1])      # centre joints stay
  assert y.dtype == np.float32


def test_flip_twice_is_identity_numpy_and_jax():
  x2 = RNG.normal(size=(2, 5, 17, 2)).astype(np.float32)
  x3 = RNG.normal(size=(2, 17, 3)).astype(np.float32)
  np.testing.assert_array_equal(skeleton.flip_2d(skeleton.flip_2d(x2)), x2)
  np.testing.assert_array_equal(skeleton.flip_3d(skeleton.flip_3d(x3)), x3)
  f = jax.jit(lambda a, b: (skeleton.flip_2d(a), skeleton.flip_3d(b)))
  y2, y3 = f(jnp.asarray(x2), jnp.asarray(x3))
  np.testing.assert_array_equal(np.asarray(y2), skeleton.flip_2d(x2))
  np.testing.assert_array_equal(np.asarray(y3), skeleton.flip_3d(x3))
  np.testing.assert_array_equal(np.asarray(f(y2, y3)[0]), x2)


def test_flip_rejects_bad_input():
  with pytest.raises(ValueError):
    skeleton.flip_2d(np.zeros((17, 3)))
  with pytest.raises(ValueError):
    skeleton.flip_permutation(17, (1, 2), (3,))


def test_mirrored_3d_projects_to_mirrored_2d():
  # Mirroring in camera space (negate camera x) maps to negating normalised x only for a camera
  # whose principal point is the image centre and without distortion: then x_norm = 2 f X/(Z w).
  w, h = 1000, 1002
  pose = RNG.normal(scale=0.3, size=(4, 17, 3)) + [0.1, -0.2, 4.0]
  to_2d = lambda p: cameras.normalize_screen(
      cameras.project(p, focal_length=(1145.0, 1143.0), center=(w / 2, h / 2)), w, h)
  np.testing.assert_allclose(to_2d(skeleton.flip_3d(pose)), skeleton.flip_2d(to_2d(pose)),
                             atol=1e-12)
  # a real Human3.6M camera (off-centre principal point, distortion) is close but not exact
  cam = cameras.camera("S1", 0)
  real = lambda p: cameras.normalize_screen(cameras.project_camera(p, cam), w, h)
  err = np.abs(real(skeleton.flip_3d(pose)) - skeleton.flip_2d(real(pose))).max()
  assert 1e-4 < err < 0.1


# ------------------------------------------------------------------ cameras

def test_cameras_data():
  assert cameras.SUBJECTS == ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
  cam = cameras.camera("S9", 3)
  assert cam.id == "60457274" and cam.image_size == (1000, 1002)
  np.testing.assert_allclose(cam.translation, [-1.69604345703125, -3.827099853515625,
                                               1.5914127197265625])
  assert [c.image_size for c in cameras.cameras("S1")] == [(1000, 1002), (1000, 1000),
                                                          (1000, 1000), (1000, 1002)]
  with pytest.raises(KeyError):
    cameras.camera("S2", 0)


@pytest.mark.parametrize("subject", cameras.SUBJECTS)
def test_camera_round_trip_and_geometry(subject):
  x = RNG.normal(size=(50, 17, 3))
  for cam in cameras.cameras(subject):
    r = cameras.quaternion_to_matrix(cam.orientation)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-6)
    xc = cameras.world_to_camera(x, cam.orientation, cam.translation)
    # the published quaternions are unit only to float32 precision (as upstream, not renormalised)
    np.testing.assert_allclose(cameras.camera_to_world(xc, cam.orientation, cam.translation), x,
                               atol=1e-5)
    np.testing.assert_allclose(cameras.world_to_camera(cam.translation, cam.orientation,
                                                       cam.translation), 0, atol=1e-12)
    # the world origin (where subjects act) is in front of every camera, 4-6 m away, near the axis
    origin = cameras.world_to_camera(np.zeros(3), cam.orientation, cam.translation)
    assert 4.0 < origin[2] < 6.5 and np.abs(origin[:2] / origin[2]).max() < 0.3


def test_qrot_matches_hamilton_product():
  def hamilton(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])
  q = cameras.camera("S5", 2).orientation
  q = q / np.linalg.norm(q)
  v = np.array([0.3, -1.2, 2.5])
  expected = hamilton(hamilton(q, np.concatenate([[0], v])), cameras.qinverse(q))[1:]
  np.testing.assert_allclose(cameras.qrot(q, v), expected, atol=1e-12)


def test_projection_hand_computed():
  # X = (0.2, -0.1, 2): u = 0.1, v = -0.05, r2 = 0.0125,
  # radial = 1 + 0.1*0.0125 + 0.01*0.0125^2 + 0.001*0.0125^3 = 1.001251564453125,
  # tan = 0.003*0.1 + 0.002*(-0.05) = 0.0002,
  # u' = 0.1*(radial + tan) + 0.003*r2 = 0.1001826564453125 -> 1000 u' + 500 = 600.1826564453125
  # v' = -0.05*(radial + tan) + 0.002*r2 = -0.05004757822265625 -> 1100 v' + 480 = 424.947663955078125
  px = cameras.project(np.array([0.2, -0.1, 2.0]), focal_length=(1000.0, 1100.0),
                       center=(500.0, 480.0), radial=(0.1, 0.01, 0.001), tangential=(0.003, 0.002))
  np.testing.assert_allclose(px, [600.1826564453125, 424.947663955078125], rtol=0, atol=1e-9)
  # pinhole without distortion; and the clip of x/z to [-1, 1]
  np.testing.assert_allclose(cameras.project(np.array([[1.0, 0.5, 2.0], [5.0, -3.0, 1.0]]),
                                             (100.0, 100.0), (0.0, 0.0)), [[50, 25], [100, -100]])


def test_normalisation_round_trip_and_values():
  w, h = 1000, 1002
  np.testing.assert_allclose(cameras.normalize_screen(np.array([[0.0, 0.0], [w, h], [w / 2, h / 2]]),
                                                      w, h),
                             [[-1, -h / w], [1, h / w], [0, 0]], atol=1e-12)
  x = RNG.uniform(0, 1000, size=(10, 17, 2)).astype(np.float32)
  n = cameras.normalize_screen(x, w, h)
  assert n.dtype == np.float32
  np.testing.assert_allclose(cameras.unnormalize_screen(n, w, h), x, rtol=1e-6, atol=1e-3)


# ------------------------------------------------------------------ safe npz

def test_safe_npz_loads_dicts_and_refuses_code(tmp_path):
  d = {"S1": {"Walk": [np.ones((2, 17, 2), np.float32)]}}
  np.savez(tmp_path / "ok.npz", positions_2d=d, metadata={"num_joints": np.int64(17)},
           plain=np.arange(3))
  out = safe_npz.load_npz(tmp_path / "ok.npz", pickled_keys=["positions_2d", "metadata"])
  np.testing.assert_array_equal(out["positions_2d"]["S1"]["Walk"][0], 1)
  assert out["metadata"]["num_joints"] == 17
  np.testing.assert_array_equal(out["plain"], [0, 1, 2])

  class Evil:
    def __reduce__(self):
      return (os.system, ("touch " + str(tmp_path / "pwned"),))
  np.savez(tmp_path / "evil.npz", positions_2d=np.array({"x": Evil()}, dtype=object))
  with pytest.raises(DataError, match=r"evil\.npz.*not allowed"):
    safe_npz.load_npz(tmp_path / "evil.npz", pickled_keys=["positions_2d"])
  assert not (tmp_path / "pwned").exists()
  with pytest.raises(DataError, match=r"ok\.npz.*pickled objects"):
    safe_npz.load_npz(tmp_path / "ok.npz")                         # pickles only where allowed
  with pytest.raises(DataError, match=r"ok\.npz: missing key\(s\) 'nope'"):
    safe_npz.load_npz(tmp_path / "ok.npz", ["positions_2d", "metadata"], required=["nope"])
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(DataError, match=r"junk\.npz: not a readable"):
    safe_npz.load_npz(tmp_path / "junk.npz")


# ------------------------------------------------------------------ loader

def test_load_sequences_synthetic(h36m_data_cfg, synthetic_h36m_root):
  seqs, info = dataset.load_sequences(h36m_data_cfg, "train")
  assert info == dataset.DatasetInfo("h36m", 17, 0, skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT,
                                     skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)
  assert len(seqs) == 2 * 2 * 4 and {s.subject for s in seqs} == {"S1", "S5"}
  assert [s.camera for s in seqs[:4]] == [0, 1, 2, 3]
  pos3d = h36m.read_positions_3d(synthetic_h36m_root / h36m.FILE_3D)
  pos2d, _ = h36m.read_positions_2d(synthetic_h36m_root / h36m.file_2d("cpn_ft_h36m_dbb"))
  for s in seqs:
    assert s.keypoints_2d.shape == (120, 17, 2) and s.keypoints_2d.dtype == np.float32
    assert s.positions_3d.shape == (120, 17, 3) and s.positions_3d.dtype == np.float32
    assert s.valid is None and s.image_size == cameras.camera(s.subject, s.camera).image_size
    np.testing.assert_array_equal(s.positions_3d[:, 0], 0)                    # root-relative
    # 2D: the file's pixels, normalised with this camera's resolution
    np.testing.assert_allclose(cameras.unnormalize_screen(s.keypoints_2d, *s.image_size),
                               pos2d[s.subject][s.action][s.camera], atol=2e-3)
    # 3D: the world pose rotated into the camera (bone lengths and root offsets preserved)
    world = skeleton.reduce_32_to_17(pos3d[s.subject][s.action])
    cam = cameras.camera(s.subject, s.camera)
    rel = (world - world[:, :1]) @ cameras.quaternion_to_matrix(cam.orientation)
    np.testing.assert_allclose(s.positions_3d, rel, atol=1e-5)


def test_test_split_and_filters(h36m_data_cfg):
  test, _ = dataset.load_sequences(h36m_data_cfg, "test")
  assert {s.subject for s in test} == {"S9", "S11"} and len(test) == 16
  action = test[0].action
  h36m_data_cfg.actions = action[:4]
  only = dataset.load_sequences(h36m_data_cfg, "test")[0]
  assert only and all(s.action.startswith(action[:4]) for s in only) and len(only) < 16
  h36m_data_cfg.actions = "NoSuchAction"
  with pytest.raises(DataError, match="no sequences match"):
    dataset.load_sequences(h36m_data_cfg, "test")
  with pytest.raises(ConfigError):
    dataset.load_sequences(h36m_data_cfg, "val")
  h36m_data_cfg.dataset = "nope"
  with pytest.raises(ConfigError, match="unknown data.dataset"):
    dataset.load_sequences(h36m_data_cfg, "train")


def test_downsample_and_subset(h36m_data_cfg):
  full = dataset.load_sequences(h36m_data_cfg, "train")[0]
  h36m_data_cfg.downsample = 3
  down = dataset.load_sequences(h36m_data_cfg, "train")[0]
  np.testing.assert_array_equal(down[5].keypoints_2d, full[5].keypoints_2d[::3])
  h36m_data_cfg.subset = 0.5
  sub = dataset.load_sequences(h36m_data_cfg, "train")[0]
  # upstream: n = round(120 // 3 * 0.5) * 3 = 60 frames from start sha256('120'), stride 3
  start = selection.deterministic_random(0, 120 - 60 + 1, "120")
  np.testing.assert_array_equal(sub[5].keypoints_2d, full[5].keypoints_2d[start:start + 60:3])
  np.testing.assert_array_equal(sub[5].positions_3d, full[5].positions_3d[start:start + 60:3])
  assert len(sub[5]) == 20 and 0 <= start <= 61
  test_sub = dataset.load_sequences(h36m_data_cfg, "test")[0]
  assert len(test_sub[0]) == 40                                    # subset is for training only
  assert (selection.deterministic_random(0, 100, "120")
          == selection.deterministic_random(0, 100, "120"))


# ------------------------------------------------------------------ prepare_h36m

def test_prepare_h36m_cli(tmp_path, synthetic_h36m_root):
  shutil.copy(synthetic_h36m_root / h36m.FILE_3D, tmp_path / h36m.FILE_3D)
  assert prepare_h36m.main(["--root", str(tmp_path)]) == 0
  out = tmp_path / h36m.file_2d("gt")
  mine, meta = h36m.read_positions_2d(out)
  ref, _ = h36m.read_positions_2d(synthetic_h36m_root / h36m.file_2d("gt"))
  assert meta == {"layout_name": "h36m", "num_joints": 17,
                  "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
  assert list(mine) == list(ref)
  for s in ref:
    for a in ref[s]:
      assert isinstance(mine[s][a], list) and len(mine[s][a]) == 4
      for c in range(4):
        np.testing.assert_array_equal(mine[s][a][c], ref[s][a][c])
  # a hand check of one point: camera 2 of S9, frame 7, joint 13 (L wrist = mocap joint 19)
  world = h36m.read_positions_3d(tmp_path / h36m.FILE_3D)["S9"]
  action = next(iter(world))
  cam = cameras.camera("S9", 2)
  xc = cameras.world_to_camera(world[action][7, 19], cam.orientation, cam.translation)
  np.testing.assert_allclose(mine["S9"][action][2][7, 13], cameras.project_camera(xc, cam), atol=1e-3)
  # never overwrites without --overwrite
  before = out.stat().st_mtime_ns
  assert prepare_h36m.main(["--root", str(tmp_path)]) == 1
  assert out.stat().st_mtime_ns == before
  assert prepare_h36m.main(["--root", str(tmp_path), "--overwrite"]) == 0


# ------------------------------------------------------------------ TFDS builder

def test_tfds_builder_matches_load_sequences(tmp_path, h36m_data_cfg, synthetic_h36m_root):
  tfds = require("tensorflow_datasets")
  from poseformer_jax.data import tfds_h36m
  builder = tfds_h36m.Human36m(config="cpn_ft_h36m_dbb", data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(synthetic_h36m_root)))
  assert set(builder.info.splits) == {"train", "test"}
  # the builder's train split is S1,S5,S6,S7,S8 restricted to the subjects in the files: S1,S5
  for split in ("train", "test"):
    expected = {f"{s.subject}/{s.action}/{s.camera}": s
                for s in dataset.load_sequences(h36m_data_cfg, split)[0]}
    got = list(tfds.as_numpy(builder.as_dataset(split=split)))
    assert builder.info.splits[split].num_examples == len(got) == len(expected)
    for ex in got:
      s = expected[f"{ex['subject'].decode()}/{ex['action'].decode()}/{ex['camera']}"]
      np.testing.assert_array_equal(ex["keypoints_2d"], s.keypoints_2d)
      np.testing.assert_array_equal(ex["positions_3d"], s.positions_3d)
      assert tuple(ex["image_size"]) == s.image_size
      cam = cameras.camera(s.subject, s.camera)
      np.testing.assert_allclose(ex["camera_params"]["translation"], cam.translation, rtol=1e-6)
      np.testing.assert_allclose(ex["camera_params"]["focal_length"], cam.focal_length, rtol=1e-6)
