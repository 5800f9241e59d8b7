"""MPI-INF-3DHP: the P-STMO-format reader, the synthetic writer, flips and the training pipeline."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from poseformer_jax import config_lib
from poseformer_jax.data import cameras, dataset, skeleton, synthetic_3dhp
from poseformer_jax.data import mpi_inf_3dhp as mpi
from poseformer_jax.data.pipeline import TrainPipeline
from poseformer_jax.data.safe_npz import load_npz
from poseformer_jax.errors import DataError

CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "mpi_inf_3dhp.py")
SMALL = dict(subjects=("S1", "S2"), seqs_per_subject=2, cameras=(0, 4, 8), frames=120,
             test_frames=100, seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """Synthetic data_train_3dhp.npz / data_test_3dhp.npz (read-only for tests)."""
  path = tmp_path_factory.mktemp("3dhp")
  synthetic_3dhp.write_3dhp(path, **SMALL)
  return path


@pytest.fixture(scope="module")
def raw(root):
  """The files' raw `data` dicts: (train, test)."""
  return tuple(load_npz(root / name, pickled_keys=["data"])["data"]
               for name in (mpi.FILE_TRAIN, mpi.FILE_TEST))


@pytest.fixture
def cfg(root):
  config = config_lib.load_config_file(CONFIG)
  config.data.root = str(root)
  return config.data


def _write(path, data):
  np.savez_compressed(path, data=data)
  return path


# ------------------------------------------------------------------ layout and reading

def test_synthetic_files_have_the_p_stmo_layout(raw):
  train, test = raw
  assert sorted(train) == ["S1 Seq1", "S1 Seq2", "S2 Seq1", "S2 Seq2"]
  entry = train["S1 Seq1"]
  assert isinstance(entry, list) and isinstance(entry[0], dict)   # [ {camera: ...}, fps ]
  assert sorted(entry[0]) == ["0", "4", "8"]
  anim = entry[0]["4"]
  assert anim["data_3d"].shape == (120, 17, 3) and anim["data_2d"].shape == (120, 17, 2)
  assert sorted(test) == list(mpi.TEST_SEQUENCES)
  for name, anim in test.items():
    assert set(anim) == {"data_3d", "data_2d", "valid"}
    assert anim["valid"].shape == (100,)
    assert 0 < anim["valid"].sum() < 100                 # some frames are not evaluated


def test_load_train_sequences(cfg):
  seqs, info = dataset.load_sequences(cfg, "train")
  assert info == mpi.INFO
  assert (info.name, info.num_joints, info.root_joint) == ("mpi_inf_3dhp", 17, 14)
  assert info.kps_left == info.joints_left == (5, 6, 7, 11, 12, 13)
  assert info.kps_right == info.joints_right == (2, 3, 4, 8, 9, 10)
  assert [(s.subject, s.action, s.camera) for s in seqs] == [
      (sub, seq, cam) for sub in ("S1", "S2") for seq in ("Seq1", "Seq2") for cam in (0, 4, 8)]
  for s in seqs:
    assert s.keypoints_2d.shape == (120, 17, 2) and s.keypoints_2d.dtype == np.float32
    assert s.positions_3d.shape == (120, 17, 3) and s.positions_3d.dtype == np.float32
    assert s.image_size == (2048, 2048) and s.valid is None


def test_load_test_sequences_keep_every_frame_and_valid_masks(cfg, raw):
  seqs, info = dataset.load_sequences(cfg, "test")
  assert [s.subject for s in seqs] == list(mpi.TEST_SEQUENCES)
  assert [s.action for s in seqs] == list(mpi.TEST_SEQUENCES)   # evaluation groups by action
  for s in seqs:
    assert len(s) == 100 and s.positions_3d.shape == (100, 17, 3)
    assert s.valid.dtype == bool and s.valid.shape == (100,)
    np.testing.assert_array_equal(s.valid, raw[1][s.subject]["valid"] == 1)
    assert not s.valid.all() and s.valid.any()


def test_root_is_zero_others_relative_in_metres(cfg, raw):
  train, test = raw
  seqs, _ = dataset.load_sequences(cfg, "train")
  s = seqs[4]                                            # S1 Seq2 camera 4
  mm = train[f"{s.subject} {s.action}"][0][str(s.camera)]["data_3d"].astype(np.float64)
  assert np.abs(mm[:, 14, 2]).min() > 3000               # the files: camera frame, millimetres
  assert (s.positions_3d[:, 14] == 0).all()
  np.testing.assert_allclose(s.positions_3d, (mm - mm[:, 14:15]) / 1000, atol=1e-6)
  thigh = np.linalg.norm(s.positions_3d[:, 9] - s.positions_3d[:, 8], axis=-1)
  assert 0.35 < thigh.mean() < 0.55                      # metres
  for t in dataset.load_sequences(cfg, "test")[0]:
    mm = test[t.subject]["data_3d"].astype(np.float64)
    assert (t.positions_3d[:, 14] == 0).all()
    np.testing.assert_allclose(t.positions_3d, (mm - mm[:, 14:15]) / 1000, atol=1e-6)


def test_normalisation_uses_each_sequences_image_size(cfg, raw):
  train, test = raw
  for s in dataset.load_sequences(cfg, "test")[0]:
    w, h = (1920, 1080) if s.subject in ("TS5", "TS6") else (2048, 2048)
    assert s.image_size == (w, h) == mpi.image_size_for(s.subject)
    px = test[s.subject]["data_2d"].astype(np.float64)
    np.testing.assert_allclose(s.keypoints_2d, px / w * 2 - [1, h / w], atol=1e-6)
    np.testing.assert_allclose(cameras.unnormalize_screen(s.keypoints_2d, w, h), px, atol=1e-3)
    assert np.abs(s.keypoints_2d[..., 1]).max() <= h / w   # inside the image
  s = dataset.load_sequences(cfg, "train")[0][0]
  px = train["S1 Seq1"][0]["0"]["data_2d"].astype(np.float64)
  np.testing.assert_allclose(s.keypoints_2d, px / 1024 - 1, atol=1e-6)


def test_subject_and_sequence_selection(cfg):
  cfg.subjects_train, cfg.subjects_test = "S2", "TS6,TS1"
  assert {s.subject for s in dataset.load_sequences(cfg, "train")[0]} == {"S2"}
  assert [s.subject for s in dataset.load_sequences(cfg, "test")[0]] == ["TS6", "TS1"]
  cfg.subjects_train, cfg.actions = "*", "Seq2"
  seqs = dataset.load_sequences(cfg, "train")[0]
  assert len(seqs) == 6 and {s.action for s in seqs} == {"Seq2"}


def test_downsample_and_subset_apply_to_training_only(cfg):
  cfg.downsample = 2
  assert len(dataset.load_sequences(cfg, "train")[0][0]) == 60
  assert len(dataset.load_sequences(cfg, "test")[0][0]) == 100
  cfg.downsample, cfg.subset = 1, 0.5
  assert len(dataset.load_sequences(cfg, "train")[0][0]) == 60


# ------------------------------------------------------------------ flip

def test_flip_twice_is_identity_with_3dhp_joints(cfg):
  s = dataset.load_sequences(cfg, "train")[0][0]
  L, R = mpi.JOINTS_LEFT, mpi.JOINTS_RIGHT
  np.testing.assert_array_equal(skeleton.flip_2d(skeleton.flip_2d(s.keypoints_2d, L, R), L, R),
                                s.keypoints_2d)
  np.testing.assert_array_equal(skeleton.flip_3d(skeleton.flip_3d(s.positions_3d, L, R), L, R),
                                s.positions_3d)
  flipped = skeleton.flip_3d(s.positions_3d, L, R)
  assert (flipped[:, 14] == 0).all()                     # the root stays the root
  np.testing.assert_allclose(flipped[:, 5], s.positions_3d[:, 2] * [-1, 1, 1])  # L shoulder <- R


def test_left_right_partners_are_mirror_bones(cfg):
  """Partner joints hang from partner (or central) parents with equal bone lengths."""
  pos = dataset.load_sequences(cfg, "train")[0][0].positions_3d
  parents = np.array(mpi.PARENTS)
  perm = skeleton.flip_permutation(17, mpi.JOINTS_LEFT, mpi.JOINTS_RIGHT)
  for j in range(17):                                    # mirror(parent(j)) == parent(mirror(j))
    p = parents[j]
    assert parents[perm[j]] == (-1 if p < 0 else perm[p])
  lengths = skeleton.bone_lengths(pos, mpi.PARENTS).mean(0)
  child = [j for j in range(17) if mpi.PARENTS[j] >= 0]
  by_joint = dict(zip(child, lengths))
  for l, r in zip(mpi.JOINTS_LEFT, mpi.JOINTS_RIGHT):
    assert by_joint[l] == pytest.approx(by_joint[r], rel=0.02)


def test_flipped_3d_projects_to_flipped_2d(cfg, raw):
  """Mirroring the camera-frame 3D and projecting equals mirroring the normalised 2D."""
  test = raw[1]
  for name in ("TS1", "TS5"):
    s = [q for q in dataset.load_sequences(cfg, "test")[0] if q.subject == name][0]
    cam = test[name]["data_3d"].astype(np.float64)[s.valid]       # absolute, mm
    kps = s.keypoints_2d[s.valid].astype(np.float64)
    # Normalised 2D of a centred pinhole camera is a * (X/Z, Y/Z); fit a.
    ratio = cam[..., :2] / cam[..., 2:]
    a = float((ratio * kps).sum() / (ratio * ratio).sum())
    np.testing.assert_allclose(a * ratio, kps, atol=1e-5)
    L, R = mpi.JOINTS_LEFT, mpi.JOINTS_RIGHT
    fl3 = skeleton.flip_3d(cam, L, R)
    np.testing.assert_allclose(a * fl3[..., :2] / fl3[..., 2:], skeleton.flip_2d(kps, L, R),
                               atol=1e-5)
    # The Human3.6M joint lists would swap the wrong joints here.
    wrong = skeleton.flip_2d(kps, skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)
    assert np.abs(a * fl3[..., :2] / fl3[..., 2:] - wrong).max() > 0.05


def test_train_pipeline_runs_on_3dhp_with_its_joints(cfg):
  seqs, info = dataset.load_sequences(cfg, "train")
  pipe = TrainPipeline(seqs, info, num_frames=9, global_batch=64, seed=0, flip=True,
                       backend="numpy", prefetch=0)
  n = sum(len(s) for s in seqs)
  assert pipe.num_samples == 2 * n and pipe.steps_per_epoch == 2 * n // 64
  batch = pipe.batch(0, 0)
  assert batch["inputs"].shape == (64, 9, 17, 2) and batch["targets"].shape == (64, 1, 17, 3)
  assert (batch["targets"][:, :, 14] == 0).all()
  ids = np.array([5, 130, 300])
  plain, mirrored = pipe.gather(ids), pipe.gather(ids + n)
  L, R = info.kps_left, info.kps_right
  np.testing.assert_array_equal(mirrored["inputs"], skeleton.flip_2d(plain["inputs"], L, R))
  np.testing.assert_array_equal(mirrored["targets"],
                                skeleton.flip_3d(plain["targets"], info.joints_left,
                                                 info.joints_right))
  # Sample 130 is frame 10 of the second sequence: the window is centred there.
  np.testing.assert_array_equal(plain["inputs"][1, 4], seqs[1].keypoints_2d[10])
  np.testing.assert_array_equal(plain["targets"][1, 0], seqs[1].positions_3d[10])
  epoch = list(pipe.epoch(0))
  assert len(epoch) == pipe.steps_per_epoch


# ------------------------------------------------------------------ synthetic on demand, config, CLI

def test_synthetic_generated_on_demand(tmp_path):
  config = config_lib.load_config_file(CONFIG)
  config.data.root = str(tmp_path / "fresh")
  config.data.synthetic.enabled = True
  config.data.synthetic.frames = 90
  dataset.ensure_synthetic(config.data)  # the one place that writes (train/eval call it)
  seqs, info = dataset.load_sequences(config.data, "train")
  assert info.name == "mpi_inf_3dhp" and len(seqs) == 2 * 2 * 3 and len(seqs[0]) == 90
  # Only a missing file is written: the existing train file is kept as is.
  (tmp_path / "fresh" / mpi.FILE_TEST).unlink()
  before = (tmp_path / "fresh" / mpi.FILE_TRAIN).stat().st_mtime_ns
  dataset.ensure_synthetic(config.data)
  assert len(dataset.load_sequences(config.data, "test")[0]) == 6
  assert (tmp_path / "fresh" / mpi.FILE_TRAIN).stat().st_mtime_ns == before


def test_config_is_the_upstream_recipe():
  config = config_lib.load_config_file(CONFIG)
  assert config.data.dataset == "mpi_inf_3dhp"
  assert (config.model.num_frames, config.model.kept_frames, config.model.kept_coeffs) == (81, 9, 9)
  assert (config.train.batch_size, config.train.learning_rate, config.train.lr_decay) == (
      512, 7e-4, 0.97)
  assert config.train.epochs == 79 and config.train.weight_decay == 0.0
  assert config.data.flip_augment and config.eval.flip
  assert config.data.subjects_train == config.data.subjects_test == "*"


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
  args = ["--root", str(tmp_path), "--frames", "30", "--test-frames", "20", "--cameras", "1,2"]
  assert synthetic_3dhp.main(args) == 0
  data = load_npz(tmp_path / mpi.FILE_TRAIN, pickled_keys=["data"])["data"]
  assert sorted(data["S2 Seq2"][0]) == ["1", "2"]
  assert synthetic_3dhp.main(args) == 1
  assert "already exists" in capsys.readouterr().err


def test_synthetic_is_deterministic():
  a, b = synthetic_3dhp.make_test(40, seed=3), synthetic_3dhp.make_test(40, seed=3)
  for name in a:
    for key in a[name]:
      np.testing.assert_array_equal(a[name][key], b[name][key])


# ------------------------------------------------------------------ errors

def _error(tmp_path, cfg, split, data, match):
  _write(tmp_path / (mpi.FILE_TRAIN if split == "train" else mpi.FILE_TEST), data)
  cfg.root = str(tmp_path)
  with pytest.raises(DataError, match=match) as e:
    dataset.load_sequences(cfg, split)
  assert "\n" not in str(e.value)
  assert (mpi.FILE_TRAIN if split == "train" else mpi.FILE_TEST) in str(e.value)


def test_missing_files_name_the_file(tmp_path, cfg):
  cfg.root = str(tmp_path)
  for split, name in (("train", mpi.FILE_TRAIN), ("test", mpi.FILE_TEST)):
    with pytest.raises(DataError, match=f"{name}: file not found"):
      dataset.load_sequences(cfg, split)


def test_train_file_errors(tmp_path, cfg, raw):
  train = raw[0]
  np.savez_compressed(tmp_path / mpi.FILE_TRAIN, positions=np.zeros(3))
  cfg.root = str(tmp_path)
  with pytest.raises(DataError, match="missing key.*'data'"):
    dataset.load_sequences(cfg, "train")

  def variant(edit):
    data = copy.deepcopy(train)
    edit(data)
    return data

  cases = [
      (lambda d: d.update({"S3": d.pop("S1 Seq1")}), "not '<subject> <sequence>'"),
      (lambda d: d.update({"S1 Seq1": {"0": {}}}), "must be a list"),
      (lambda d: d["S1 Seq1"][0].update({"left": d["S1 Seq1"][0]["0"]}), "not a camera number"),
      (lambda d: d["S1 Seq1"][0]["0"].pop("data_2d"), "lacks 'data_2d'"),
      (lambda d: d["S1 Seq1"][0]["0"].update(data_3d=np.zeros((120, 16, 3))), r"shape \(120, 16, 3\)"),
      (lambda d: d["S1 Seq1"][0]["0"].update(data_2d=np.zeros((110, 17, 2))), "110 2D frames but 120"),
      (lambda d: d["S1 Seq1"][0]["0"]["data_2d"].__setitem__((3, 2, 0), np.nan), "NaN/inf.*data_2d"),
      (lambda d: d["S1 Seq1"][0]["0"]["data_3d"].__setitem__((3, 2, 0), np.inf), "NaN/inf.*data_3d"),
      (lambda d: d["S1 Seq1"][0]["0"].update(data_3d=np.zeros((0, 17, 3))), "shape|empty"),
  ]
  for edit, match in cases:
    _error(tmp_path, cfg, "train", variant(edit), match)
  cfg.subjects_train = "S1,S7"
  _error(tmp_path, cfg, "train", train, "subject S7 not found")


def test_test_file_errors(tmp_path, cfg, raw):
  test = raw[1]

  def variant(edit):
    data = copy.deepcopy(test)
    edit(data)
    return data

  cases = [
      (lambda d: d["TS2"].pop("valid"), "TS2.*lacks 'valid'"),
      (lambda d: d["TS2"].update(valid=np.ones(99)), "'valid' has 99 entries for 100 frames"),
      (lambda d: d["TS2"].update(valid=np.full(100, 2.0)), "other than 0/1"),
      (lambda d: d["TS2"].update(valid=["yes"] * 100), "not a numeric or bool array"),
      (lambda d: d["TS3"].update(data_2d=np.zeros((100, 17, 3))), r"shape \(100, 17, 3\)"),
      (lambda d: d["TS4"]["data_2d"].__setitem__((0, 0, 0), np.nan), "NaN/inf.*data_2d"),
      (lambda d: d["TS4"]["data_3d"].__setitem__(
          (int(np.flatnonzero(d["TS4"]["valid"])[0]), 0, 0), np.nan), "data_3d' of valid frames"),
      (lambda d: d.update(TS1="nothing"), "expected a dict"),
  ]
  for edit, match in cases:
    _error(tmp_path, cfg, "test", variant(edit), match)
  cfg.subjects_test = "TS7"
  _error(tmp_path, cfg, "test", test, "test sequence TS7 not found")


def test_nan_in_invalid_test_frames_is_tolerated(tmp_path, cfg, raw):
  data = copy.deepcopy(raw[1])
  bad = int(np.flatnonzero(data["TS1"]["valid"] == 0)[0])
  data["TS1"]["data_3d"][bad] = np.nan
  data["TS1"]["valid"] = data["TS1"]["valid"].astype(bool)     # bool masks are fine too
  _write(tmp_path / mpi.FILE_TEST, data)
  cfg.root, cfg.subjects_test = str(tmp_path), "TS1"
  (s,), _ = dataset.load_sequences(cfg, "test")
  assert np.isfinite(s.positions_3d).all() and not s.valid[bad]


def test_pickled_code_is_refused(tmp_path, cfg):
  class Evil:
    def __reduce__(self):
      return (print, ("pwned",))

  path = tmp_path / mpi.FILE_TEST
  arr = np.empty((), object)
  arr[()] = {"TS1": Evil()}
  np.savez(path, data=arr)
  cfg.root = str(tmp_path)
  with pytest.raises(DataError, match="refused"):
    dataset.load_sequences(cfg, "test")


@pytest.mark.slow
def test_train_and_eval_end_to_end_on_synthetic_3dhp(tmp_path):
  """train.py then eval.py on synthetic P-STMO files: per-sequence MPJPE/PCK/AUC and the pooled figure."""
  import json
  import subprocess
  import sys
  root = Path(__file__).resolve().parents[1]
  common = ["--config=configs/mpi_inf_3dhp.py", f"--config.data.root={tmp_path / 'data'}",
            "--config.data.synthetic.enabled=True", "--config.data.synthetic.subjects=S1",
            "--config.data.synthetic.actions_per_subject=1", "--config.data.synthetic.frames=60",
            "--config.data.backend=numpy", "--config.model.num_frames=9",
            "--config.model.kept_frames=3", "--config.model.kept_coeffs=3",
            "--config.model.embed_dim_ratio=8", "--config.model.depth=1", "--config.model.num_heads=2",
            "--config.eval.batch_size=64"]
  train = subprocess.run(
      [sys.executable, "train.py", *common, f"--workdir={tmp_path / 'run'}",
       "--config.train.batch_size=32", "--config.train.epochs=1",
       "--config.train.max_steps_per_epoch=2", "--config.train.final_eval=False",
       "--config.train.progress_bar=False"],
      capture_output=True, text=True, cwd=root)
  assert train.returncode == 0, train.stderr[-2000:]
  out = tmp_path / "results.json"
  ev = subprocess.run([sys.executable, "eval.py", *common, f"--checkpoint={tmp_path / 'run'}",
                       f"--output={out}"], capture_output=True, text=True, cwd=root)
  assert ev.returncode == 0, ev.stderr[-2000:]
  results = json.loads(out.read_text())
  assert set(results["actions"]) == {f"TS{i}" for i in range(1, 7)}
  for values in [*results["actions"].values(), results["overall"]]:
    assert 0 <= values["pck"] <= 100 and 0 <= values["auc"] <= values["pck"] + 1e-6
    assert values["p1"] > 0
  assert "TS6" in ev.stdout and "PCK" in ev.stdout
