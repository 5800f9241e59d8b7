"""A person found is lifted: joints never above the confidence threshold take the detector's
low-confidence estimate, joints with no position at all sit on their nearest joint; both are
marked in the outputs and named in one warning line.

The shared MediaPipe keypoints (``examples/*_mediapipe33.npz``) with one joint's
visibility set to zero in every frame stand for a detector that never trusts that
joint; a random-weight model (F=27) does the lifting.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from conftest import REPO_ROOT
from poseformer_jax import Lifter, gaps, lift
from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError
from poseformer_jax.video import formats
from test_lift_wild import write_checkpoint

lift_cli = importlib.import_module("poseformer_jax.lift_command.main")
SKATER = REPO_ROOT / "examples" / "skater_mediapipe33.npz"
MP_RIGHT_WRIST, H36M_RIGHT_WRIST = 16, 16  # MediaPipe landmark 16 -> H36M joint 16


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
  return write_checkpoint(tmp_path_factory.mktemp("low") / "ckpt")


@pytest.fixture(scope="module")
def lifter(ckpt_dir):
  return Lifter(str(ckpt_dir))


def zeroed_skater(tmp_path, frames: int = 40, landmark: int = MP_RIGHT_WRIST):
  """The skater's first `frames` frames with `landmark`'s visibility 0 in every frame."""
  with np.load(SKATER) as f:
    data = {k: f[k] for k in f.files}
  data["keypoints"] = data["keypoints"][:frames]
  data["detected"] = data["detected"][:frames]
  data["visibility"] = data["visibility"][:frames].copy()
  data["visibility"][:, landmark] = 0.0
  path = tmp_path / "zeroed_mediapipe33.npz"
  np.savez(path, **data)
  return path, data


def test_use_estimates_fills_only_never_confident_joints():
  kps = np.arange(4 * 3 * 2, dtype=float).reshape(4, 3, 2)
  est = kps + 0.5
  kps[:, 1] = np.nan  # joint 1 never confident
  kps[2, 0] = np.nan  # joint 0 missing once: interpolated later, not an estimate
  est[3, 1] = np.nan  # and the detector gave no estimate of joint 1 in frame 3
  out, low = gaps.use_estimates(kps, est)
  assert low.tolist() == [[False, True, False]] * 3 + [[False, False, False]]
  np.testing.assert_array_equal(out[:3, 1], est[:3, 1])
  assert np.isnan(out[3, 1]).all() and np.isnan(out[2, 0]).all()
  filled, mask = gaps.fill_gaps(out)
  np.testing.assert_array_equal(filled[3, 1], est[2, 1])  # held from the last estimate
  assert mask[3, 1] and mask[2, 0] and not mask[:3, 1].any()
  with pytest.raises(DataError, match="do not match"):
    gaps.use_estimates(kps, est[:2])


def test_a_joint_seen_nowhere_sits_on_its_nearest_joint():
  x = np.random.default_rng(0).uniform(0, 100, (5, 17, 2))
  x[:, 16] = np.nan  # right wrist: on the right elbow (its parent)
  x[:, [1, 4]] = np.nan  # both hips: on the pelvis (parent before children)
  x[2, 15] = np.nan  # the elbow itself missing once: interpolated first
  filled, mask = gaps.fill_gaps(x, parents=skeleton.PARENTS)
  np.testing.assert_array_equal(filled[:, 16], filled[:, 15])
  np.testing.assert_allclose(filled[2, 15], (x[1, 15] + x[3, 15]) / 2)
  np.testing.assert_array_equal(filled[:, 1], x[:, 0])
  np.testing.assert_array_equal(filled[:, 4], x[:, 0])
  assert mask[:, [1, 4, 16]].all() and mask.sum() == 15 + 1
  assert gaps.nearest_present(0, np.eye(17, dtype=bool)[10], skeleton.PARENTS) == 10
  with pytest.raises(DataError, match="right_wrist missing in every frame"):
    gaps.fill_gaps(x, joint_names=skeleton.JOINT_NAMES)  # without a skeleton: as before


def test_never_confident_joint_is_lifted_marked_and_warned(tmp_path, ckpt_dir, lifter, capsys):
  path, data = zeroed_skater(tmp_path)
  out = tmp_path / "o.npz"
  assert lift_cli.main([str(path), f"--checkpoint={ckpt_dir}", "--no-progress",
                        f"--output={out}", f"--json={tmp_path / 'o.json'}"]) == 0
  err = capsys.readouterr().err
  warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
  assert len(warnings) == 1, err
  assert "right_wrist" in warnings[0] and "0.2" in warnings[0] and "low_confidence" in warnings[0]
  with np.load(out) as f:
    low, filled, kps = f["low_confidence"], f["filled"], f["keypoints_2d"]
    poses = f["poses_3d"]
  assert low.shape == (40, 17) and low[:, H36M_RIGHT_WRIST].all() and low.sum() == 40
  assert not filled[:, H36M_RIGHT_WRIST].any()
  np.testing.assert_allclose(kps[:, H36M_RIGHT_WRIST], data["keypoints"][:, MP_RIGHT_WRIST],
                             atol=1e-3)
  # The other joints as without the fallback; the poses are the library's lift of that input.
  normal, _, _ = formats.load_keypoints(SKATER, "mediapipe33")
  others = [j for j in range(17) if j != H36M_RIGHT_WRIST]
  np.testing.assert_allclose(kps[:, others], gaps.fill_gaps(normal[:40])[0][:, others],
                             atol=1e-3)
  np.testing.assert_allclose(poses, lift(kps, (1280, 720), lifter), atol=1e-5)
  rows = json.loads((tmp_path / "o.json").read_text())["frames"]
  assert rows[0]["low_confidence_joints"] == [H36M_RIGHT_WRIST] and rows[0]["filled_joints"] == []


@pytest.mark.parametrize("frames", [1, 2])
def test_clips_of_any_length_with_a_never_confident_joint(tmp_path, ckpt_dir, frames):
  path, _ = zeroed_skater(tmp_path, frames)
  out = tmp_path / "o.npz"
  assert lift_cli.main([str(path), f"--checkpoint={ckpt_dir}", "--no-progress",
                        f"--output={out}"]) == 0
  with np.load(out) as f:
    assert f["poses_3d"].shape == (frames, 17, 3) and np.isfinite(f["poses_3d"]).all()
    assert f["low_confidence"][:, H36M_RIGHT_WRIST].all()


def test_stream_starts_with_the_estimate(tmp_path, ckpt_dir, capsys):
  """Online: a joint not yet confident takes this frame's estimate (the stream no longer waits
  for it forever)."""
  path, data = zeroed_skater(tmp_path, 30)
  out = tmp_path / "s.npz"
  assert lift_cli.main([str(path), f"--checkpoint={ckpt_dir}", "--no-progress", "--stream",
                        f"--output={out}"]) == 0
  with np.load(out) as f:
    assert f["poses_3d"].shape == (30, 17, 3) and f["first_frame"] == 0
    assert f["low_confidence"][:, H36M_RIGHT_WRIST].all() and f["low_confidence"].sum() == 30
    np.testing.assert_allclose(f["keypoints_2d"][:, H36M_RIGHT_WRIST],
                               data["keypoints"][:, MP_RIGHT_WRIST], atol=1e-3)


def test_no_position_at_all_is_placed_and_warned(tmp_path, ckpt_dir, capsys):
  """A COCO file that writes (0, 0) for the left ankle in every frame: no estimate exists, so
  the ankle sits on the left knee (its parent), marked filled."""
  rng = np.random.default_rng(3)
  coco = rng.uniform(100, 300, (12, 17, 2))
  coco[:, 15] = 0.0  # COCO 15 = left ankle -> H36M 6
  path = tmp_path / "k.npz"
  np.savez(path, keypoints=coco, scores=np.full((12, 17), 0.9), width=400, height=400)
  out = tmp_path / "o.npz"
  assert lift_cli.main([str(path), "--format=coco17", f"--checkpoint={ckpt_dir}",
                        "--no-progress", f"--output={out}"]) == 0
  warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
  assert len(warnings) == 1 and "placed on the nearest joint" in warnings[0]
  assert "left_ankle" in warnings[0] and "low_confidence" not in warnings[0]
  with np.load(out) as f:
    assert f["filled"][:, 6].all() and not f["low_confidence"].any()
    np.testing.assert_allclose(f["keypoints_2d"][:, 6], f["keypoints_2d"][:, 5])


def test_no_person_at_all_stays_an_error(tmp_path, ckpt_dir, capsys):
  path, data = zeroed_skater(tmp_path, 5)
  data["keypoints"][:] = np.nan
  data["detected"][:] = False
  np.savez(path, **data)
  out = tmp_path / "o.npz"
  assert lift_cli.main([str(path), f"--checkpoint={ckpt_dir}", "--no-progress",
                        f"--output={out}"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "no person in any of the 5 frames" in err
  assert not out.exists()
