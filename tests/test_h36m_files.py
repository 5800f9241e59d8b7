"""Human3.6M files: custom and broken 2D/3D files, frame-count rules, file names, synthetic data."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from poseformer_jax import config_lib
from poseformer_jax.data import cameras, dataset, h36m, prepare_h36m, skeleton, synthetic
from poseformer_jax.errors import DataError


def _write_3d(root, pos3d):
  np.savez(root / h36m.FILE_3D, positions_3d=pos3d)


def _write_2d(root, pos2d, keypoints="gt", metadata=None):
  meta = prepare_h36m.metadata() if metadata is None else metadata
  np.savez(root / h36m.file_2d(keypoints), positions_2d=pos2d, metadata=meta)


def _small_pos3d(subjects=("S1", "S11"), actions=("Walking", "Directions"), frames=30):
  return synthetic.make_positions_3d(subjects, 2, frames, seed=3) if actions is None else {
      s: {a: synthetic.motion(frames, np.random.default_rng(i), 1.0) for i, a in enumerate(actions)}
      for s in subjects}


def _cfg(root, keypoints="gt", train="S1", test="S11"):
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints, cfg.subjects_train, cfg.subjects_test = str(root), keypoints, train, test
  return cfg


def test_s11_directions_dropped_from_test_and_trimming(tmp_path):
  pos3d = _small_pos3d()
  _write_3d(tmp_path, pos3d)
  pos2d = prepare_h36m.project_positions(pos3d)
  longer = {s: {a: [np.concatenate([v, v[-5:] + 100]) for v in views] for a, views in acts.items()}
            for s, acts in pos2d.items()}
  _write_2d(tmp_path, longer, "det")
  test = dataset.load_sequences(_cfg(tmp_path, "det"), "test")[0]
  assert {s.action for s in test} == {"Walking"}
  train = dataset.load_sequences(_cfg(tmp_path, "det", train="S11"), "train")[0]
  assert {s.action for s in train} == {"Walking", "Directions"}
  for s in train:                                                  # trimmed to the mocap's 30 frames
    assert len(s.keypoints_2d) == len(s.positions_3d) == 30
    np.testing.assert_allclose(cameras.unnormalize_screen(s.keypoints_2d, *s.image_size),
                               pos2d[s.subject][s.action][s.camera], atol=1e-3)


def _expect_error(root, pattern, keypoints="gt", train="S1"):
  with pytest.raises(DataError) as e:
    dataset.load_sequences(_cfg(root, keypoints, train=train), "train")
  msg = str(e.value)
  assert "\n" not in msg
  assert re.search(pattern, msg), msg
  return msg


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path):
  pos3d = _small_pos3d(subjects=("S1",), actions=("Walking",))
  pos2d = prepare_h36m.project_positions(pos3d)
  f3, f2 = str(tmp_path / h36m.FILE_3D), str(tmp_path / h36m.file_2d("gt"))

  _expect_error(tmp_path, f"{f3}: file not found")
  _write_3d(tmp_path, pos3d)
  _expect_error(tmp_path, f"{f2}: file not found")

  np.savez(tmp_path / h36m.file_2d("gt"), positions_2d=pos2d)                  # no metadata
  _expect_error(tmp_path, f"{f2}: missing key\\(s\\) 'metadata'")
  np.savez(tmp_path / h36m.FILE_3D, poses=np.zeros(3))
  _expect_error(tmp_path, f"{f3}: missing key\\(s\\) 'positions_3d'")

  _write_3d(tmp_path, pos3d)
  _write_2d(tmp_path, pos2d)
  assert len(dataset.load_sequences(_cfg(tmp_path), "train")[0]) == 4         # the good case
  _expect_error(tmp_path, f"{f3}: subject S5 not found", train="S5")
  _write_2d(tmp_path, {"S5": pos2d["S1"]})
  _expect_error(tmp_path, f"{f2}: subject S1 missing from the 2D file")

  _write_2d(tmp_path, {"S1": {"Walking": [v[:20] for v in pos2d["S1"]["Walking"]]}})
  _expect_error(tmp_path, f"{f2}: S1 'Walking' camera 0 has 20 frames, fewer than its mocap's 30")
  _write_2d(tmp_path, {"S1": {"Walking": [v[:, :16] for v in pos2d["S1"]["Walking"]]}})
  _expect_error(tmp_path, f"{f2}: S1 'Walking' camera 0 has 16 joints, expected 17")
  _write_2d(tmp_path, {"S1": {"Walking": [v.astype(np.int32) for v in pos2d["S1"]["Walking"]]}})
  _expect_error(tmp_path, f"{f2}: .* has dtype int32, expected floating point")
  _write_2d(tmp_path, {"S1": {}})
  _expect_error(tmp_path, f"{f2}: S1 'Walking' missing from the 2D file")
  _write_2d(tmp_path, pos2d, metadata={"num_joints": 17})
  _expect_error(tmp_path, f"{f2}: 'metadata' lacks 'keypoints_symmetry'")
  _write_2d(tmp_path, pos2d)

  bad = {"S1": {"Walking": pos3d["S1"]["Walking"][:, :17]}}
  _write_3d(tmp_path, bad)
  _expect_error(tmp_path, f"{f3}: S1 'Walking' has 17 joints, expected 32")
  nan = pos3d["S1"]["Walking"].copy()
  nan[7, 3, 1] = np.nan
  _write_3d(tmp_path, {"S1": {"Walking": nan}})
  _expect_error(tmp_path, f"{f3}: S1 'Walking' has NaN/inf values")
  _write_3d(tmp_path, {"S1": {"Walking": np.zeros((0, 32, 3), np.float32)}})
  _expect_error(tmp_path, f"{f3}: S1 'Walking' is empty")
  _write_3d(tmp_path, {"S1": {"Walking": np.zeros((30, 32), np.float32)}})
  _expect_error(tmp_path, f"{f3}: S1 'Walking' has shape \\(30, 32\\), expected")
  _write_3d(tmp_path, {"S1": np.zeros(3)})
  _expect_error(tmp_path, f"{f3}: 'positions_3d' is not a")


def test_synthetic_generated_on_demand(tmp_path):
  cfg = _cfg(tmp_path / "fresh", "cpn_ft_h36m_dbb")
  cfg.synthetic.enabled = True
  cfg.synthetic.subjects = "S1,S11"
  cfg.synthetic.actions_per_subject = 1
  cfg.synthetic.frames = 40
  with pytest.raises(DataError):  # loading only reads: nothing is generated behind the caller
    dataset.load_sequences(cfg, "train")
  assert not (tmp_path / "fresh").exists() or not os.listdir(tmp_path / "fresh")
  dataset.ensure_synthetic(cfg)  # the one place that writes, asked for by the entry code
  seqs, _ = dataset.load_sequences(cfg, "train")
  assert len(seqs) == 4 and len(seqs[0]) == 40
  assert sorted(os.listdir(tmp_path / "fresh")) == [
      "data_2d_h36m_cpn_ft_h36m_dbb.npz", "data_2d_h36m_gt.npz", "data_3d_h36m.npz"]
  with pytest.raises(DataError, match="already exists"):
    synthetic.write_h36m(tmp_path / "fresh", subjects="S1")


def test_frame_counts_trim_a_few_missing_frames_and_skip_2d_without_mocap(tmp_path):
  pos3d = _small_pos3d(subjects=("S1",), actions=("Walking",))
  _write_3d(tmp_path, pos3d)
  pos2d = prepare_h36m.project_positions(pos3d)
  views = pos2d["S1"]["Walking"]
  short = [v[:30 - h36m.MAX_FRAME_SHORTFALL] if c == 2 else v for c, v in enumerate(views)]
  _write_2d(tmp_path, {"S1": {"Walking": short, "Discussion 2": views}}, "det")  # no mocap: skipped
  seqs = dataset.load_sequences(_cfg(tmp_path, "det"), "train")[0]
  n = 30 - h36m.MAX_FRAME_SHORTFALL
  assert [s.action for s in seqs] == ["Walking"] * 4
  assert all(len(s.keypoints_2d) == len(s.positions_3d) == n for s in seqs)   # mocap trimmed
  _write_2d(tmp_path, pos2d)
  ref = dataset.load_sequences(_cfg(tmp_path), "train")[0]
  for s, r in zip(seqs, ref):
    np.testing.assert_array_equal(s.positions_3d, r.positions_3d[:n])
  too_short = [v[:30 - h36m.MAX_FRAME_SHORTFALL - 1] if c == 1 else v for c, v in enumerate(views)]
  _write_2d(tmp_path, {"S1": {"Walking": too_short}}, "det")
  _expect_error(tmp_path, f"S1 'Walking' camera 1 has {n - 1} frames, fewer than its mocap's 30 "
                f"\\(at most {h36m.MAX_FRAME_SHORTFALL}", keypoints="det")


def test_files_with_the_train_suffix_are_found(tmp_path):
  pos3d = _small_pos3d(subjects=("S1",), actions=("Walking",))
  np.savez(tmp_path / "data_3d_h36m_train.npz", positions_3d=pos3d)
  np.savez(tmp_path / "data_2d_h36m_det_train.npz",
           positions_2d=prepare_h36m.project_positions(pos3d), metadata=prepare_h36m.metadata())
  assert h36m.find_file(tmp_path, h36m.FILE_3D) == tmp_path / "data_3d_h36m_train.npz"
  assert len(dataset.load_sequences(_cfg(tmp_path, "det"), "train")[0]) == 4
  _write_3d(tmp_path, {"S5": pos3d["S1"]})                          # the exact name wins
  assert h36m.find_file(tmp_path, h36m.FILE_3D) == tmp_path / h36m.FILE_3D
  _expect_error(tmp_path, "subject S1 not found", keypoints="det")


def test_readers_only_read():
  """Loading modules never import the synthetic writers; only `ensure_synthetic` writes."""
  code = ("import sys; from poseformer_jax.data import h36m, mpi_inf_3dhp, tfds_h36m; "
          "bad = [m for m in sys.modules if m.startswith('poseformer_jax.data.synthetic')]; "
          "assert not bad, bad")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]


def test_ensure_synthetic_writes_only_what_is_missing(tmp_path):
  cfg = _cfg(tmp_path / "syn")
  assert dataset.ensure_synthetic(cfg) == [] and not (tmp_path / "syn").exists()   # disabled
  cfg.synthetic.enabled, cfg.synthetic.subjects, cfg.synthetic.frames = True, "S1", 20
  written = dataset.ensure_synthetic(cfg)
  assert sorted(p.name for p in written) == sorted(os.listdir(tmp_path / "syn"))
  assert len(written) == 3 and dataset.ensure_synthetic(cfg) == []


def test_synthetic_data_is_plausible(synthetic_h36m_root):
  pos3d = h36m.read_positions_3d(synthetic_h36m_root / h36m.FILE_3D)
  gt, meta = h36m.read_positions_2d(synthetic_h36m_root / h36m.file_2d("gt"))
  cpn, _ = h36m.read_positions_2d(synthetic_h36m_root / synthetic.CPN_FILE)
  assert meta == prepare_h36m.metadata()
  for subject, actions in pos3d.items():
    for action, world in actions.items():
      assert world.dtype == np.float32 and world.shape == (120, 32, 3)
      w17 = skeleton.reduce_32_to_17(world.astype(np.float64))
      bl = skeleton.bone_lengths(w17)
      assert np.ptp(bl, axis=0).max() < 1e-5                      # rigid bones
      assert 0.38 < bl[:, 1].mean() < 0.5                            # a thigh, metres
      assert np.abs(np.diff(w17, axis=0)).max() < 0.1              # smooth at 50 fps
      assert (w17[:, 10, 2] > w17[:, 0, 2] + 0.5).all()            # head above the pelvis
      for c, px in enumerate(gt[subject][action]):
        assert px.dtype == np.float32 and px.shape == (120, 17, 2)
        assert px.min() > 0 and px.max() < 1000                    # visible in every camera
        noise = cpn[subject][action][c] - px
        assert 0.5 < noise.std() < 2.0


def test_detection_mix_adds_a_copy_of_each_training_sequence_per_source(tmp_path):
  pos3d = _small_pos3d()
  _write_3d(tmp_path, pos3d)
  pos2d = prepare_h36m.project_positions(pos3d)
  _write_2d(tmp_path, pos2d, "gt")
  shifted = {s: {a: [v + 7.0 for v in views] for a, views in acts.items()}
             for s, acts in pos2d.items()}
  _write_2d(tmp_path, shifted, "det")
  cfg = _cfg(tmp_path, "gt")
  alone = dataset.load_sequences(cfg, "train")[0]
  cfg.keypoints_mix = "det"
  mixed, info = dataset.load_sequences(cfg, "train")
  assert info.num_joints == 17 and len(mixed) == 2 * len(alone)
  for a, b in zip(alone, mixed[len(alone):]):                     # same 3D, the other source's 2D
    assert (a.subject, a.action, a.camera) == (b.subject, b.action, b.camera)
    np.testing.assert_array_equal(a.positions_3d, b.positions_3d)
    np.testing.assert_allclose(cameras.unnormalize_screen(b.keypoints_2d, *b.image_size),
                               cameras.unnormalize_screen(a.keypoints_2d, *a.image_size) + 7.0,
                               atol=1e-3)
  test = dataset.load_sequences(cfg, "test")[0]                    # evaluation: keypoints alone
  assert len(test) == len(dataset.load_sequences(_cfg(tmp_path, "gt"), "test")[0])
  cfg.keypoints_mix = "gt,det"                                     # the main source is not doubled
  assert len(dataset.load_sequences(cfg, "train")[0]) == 2 * len(alone)
  cfg.keypoints_mix = "cpn"
  with pytest.raises(DataError, match=r"data_2d_h36m_cpn"):
    dataset.load_sequences(cfg, "train")
