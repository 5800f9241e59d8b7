"""Predictor (inference.py) and the evaluation protocol (evaluation.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from poseformer_jax import evaluation
from poseformer_jax import model as model_lib
from poseformer_jax.data.dataset import DatasetInfo, Sequence
from poseformer_jax.inference import Predictor

J = 17
LEFT, RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)
H36M_INFO = DatasetInfo(name="h36m", num_joints=J, root_joint=0, kps_left=LEFT, kps_right=RIGHT,
                        joints_left=LEFT, joints_right=RIGHT)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _highest_precision():
  """Exact float32 matmuls for every comparison in this module."""
  with jax.default_matmul_precision("highest"):
    yield


@pytest.fixture(scope="module")
def tiny():
  """A tiny PoseFormerV2 (F=9, f=3, n=3, width 8, depth 1) with random weights.

  Weights are drawn with numpy from the parameter shapes (no init compilation),
  all non-zero so that position embeddings and biases are exercised too.
  """
  model = model_lib.PoseFormerV2(num_frames=9, kept_frames=3, kept_coeffs=3, num_joints=J,
                                 embed_dim_ratio=8, depth=1, num_heads=2, drop_path_rate=0.0)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, 9, J, 2), np.float32))["params"]
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    noise = rng.normal(size=leaf.shape).astype(np.float32)
    if name.endswith("['scale']"):
      return 1.0 + 0.1 * noise
    fan_in = leaf.shape[0] if len(leaf.shape) == 2 else 1
    return noise / np.sqrt(fan_in) * (1.0 if len(leaf.shape) == 2 else 0.1)

  return model, jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def predictors(tiny):
  """Predictor factory, memoised: each configuration compiles its forward once."""
  cache = {}

  def get(**kw):
    kw.setdefault("batch_size", 8)
    kw.setdefault("root_joint", None)
    kw.setdefault("flip", True)
    key = tuple(sorted(kw.items(), key=lambda kv: kv[0]))
    if key not in cache:
      cache[key] = Predictor(tiny[0], tiny[1], kps_left=LEFT, kps_right=RIGHT,
                             joints_left=LEFT, joints_right=RIGHT, **kw)
    return cache[key]

  return get


@pytest.fixture(scope="module")
def naive(tiny):
  model, params = tiny
  apply = jax.jit(lambda x: model.apply({"params": params}, x, deterministic=True))
  return lambda seq, flip: naive_predict(apply, model.num_frames, seq, flip)


def _keypoints(rng, t):
  return (rng.normal(size=(t, J, 2)) * 0.3).astype(np.float32)


def naive_predict(apply, num_frames, seq, flip):
  """Per-frame loop: edge-padded window by hand, one apply per window, flip by hand."""
  pad = (num_frames - 1) // 2
  padded = np.pad(seq, ((pad, pad), (0, 0), (0, 0)), mode="edge")
  out = []
  for t in range(len(seq)):
    win = padded[t:t + num_frames]
    y = np.asarray(apply(win[None]))[0, 0]
    if flip:
      wf = win.copy()
      wf[..., 0] *= -1
      wf[:, list(LEFT + RIGHT)] = wf[:, list(RIGHT + LEFT)]
      yf = np.asarray(apply(wf[None]))[0, 0].copy()
      yf[..., 0] *= -1
      yf[list(LEFT + RIGHT)] = yf[list(RIGHT + LEFT)]
      y = (y + yf) / 2
    out.append(y)
  return np.stack(out)


# ---- Predictor --------------------------------------------------------------

@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("length", [5, 20])  # shorter than F=9; longer than the batch (8)
def test_predictor_matches_naive_loop(predictors, naive, flip, length):
  rng = np.random.default_rng(length)
  seq = _keypoints(rng, length)
  got = predictors(flip=flip).predict_sequence(seq)
  want = naive(seq, flip)
  assert got.shape == (length, J, 3) and got.dtype == np.float32
  # Batched vs one-window forwards differ in float32 summation order only (~1e-6 m on a
  # loaded CPU); 5e-6 m stays well inside the 1e-5 m parity bound.
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=5e-6)
  if flip:  # the flip is not a no-op for this model
    assert np.abs(got - naive(seq, False)).max() > 1e-3


def test_batch_padding_and_single_compilation(predictors):
  rng = np.random.default_rng(1)
  seqs = [_keypoints(rng, t) for t in (3, 8, 13, 21)]
  pred8 = predictors(batch_size=8)
  ref = [pred8.predict_sequence(s) for s in seqs]
  # One forward compilation for every sequence length (partial batches padded).
  assert pred8.share_frames and pred8._forward_rows._cache_size() == 1
  for bs in (5, 64):
    other = predictors(batch_size=bs)
    for s, r in zip(seqs, ref):
      np.testing.assert_allclose(other.predict_sequence(s), r, rtol=1e-5, atol=1e-6)
  # Batched across sequences: same as one at a time.
  done = []
  multi = pred8.predict_sequences(seqs, progress=done.append)
  assert pred8._forward_rows._cache_size() == 1
  assert [m.shape for m in multi] == [r.shape for r in ref]
  for m, r in zip(multi, ref):
    np.testing.assert_allclose(m, r, rtol=1e-5, atol=1e-6)
  assert done[-1] == sum(len(s) for s in seqs) and done == sorted(done)
  assert pred8.predict_sequences([]) == []


@pytest.mark.parametrize("chunk_rows", [3, 16])
def test_chunked_forward_matches_one_call(tiny, predictors, chunk_rows):
  """Chunks inside the jitted forward (lax.map; 16 rows = 8 windows + flips, 3 leaves rows
  after the last whole chunk) give the one-call result, and the compiled program loops."""
  from poseformer_jax.inference import chunked_apply
  seq = _keypoints(np.random.default_rng(7), 19)
  whole = predictors(chunk_rows=0)
  chunked = predictors(chunk_rows=chunk_rows)
  np.testing.assert_allclose(chunked.predict_sequence(seq), whole.predict_sequence(seq),
                             rtol=1e-5, atol=1e-6)
  model, params = tiny
  x = jax.numpy.asarray(np.stack([seq[:9]] * 7))  # 7 windows of F=9
  lowered = jax.jit(chunked_apply(model, chunk_rows)).lower(params, x).as_text()
  assert ("while" in lowered) == (chunk_rows < 7)
  np.testing.assert_allclose(chunked_apply(model, chunk_rows)(params, x),
                             chunked_apply(model, 0)(params, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
def test_shared_frames_match_one_spatial_pass_per_window(predictors, flip):
  """Running the spatial branch once per frame (share_frames) gives the per-window result, for
  sequences shorter than a window, batches across sequence borders and padded last batches."""
  rng = np.random.default_rng(11)
  seqs = [_keypoints(rng, t) for t in (1, 2, 5, 8, 13, 30)]
  shared = predictors(batch_size=8, flip=flip)
  plain = predictors(batch_size=8, flip=flip, share_frames=False)
  assert shared.share_frames and not plain.share_frames
  # float32 sums in another order: a few micrometres apart at most (a wrong window is mm off)
  for a, b in zip(shared.predict_sequences(seqs), plain.predict_sequences(seqs)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-6)
  np.testing.assert_allclose(shared.predict_sequence(seqs[-1]), plain.predict_sequence(seqs[-1]),
                             rtol=1e-5, atol=5e-6)
  # Windows that are not consecutive (a hand-made index batch) take the per-window path.
  data = jax.device_put(np.concatenate(seqs))
  idx = np.stack([np.arange(9), np.arange(40, 49)] * 4).astype(np.int32)
  np.testing.assert_allclose(np.asarray(shared._forward_batch(data, idx)),
                             np.asarray(plain._forward_batch(data, idx)), rtol=1e-5, atol=1e-6)
  # Fewer frames than a batch's span (B + f - 1 = 10 > 9): the per-window path as well.
  few = jax.device_put(seqs[3][:9])
  idx = np.clip(np.arange(8)[:, None] + np.arange(9) - 4, 0, 8).astype(np.int32)
  np.testing.assert_allclose(np.asarray(shared._forward_batch(few, idx)),
                             np.asarray(plain._forward_batch(few, idx)), rtol=1e-5, atol=1e-6)
  assert shared._forward._cache_size() >= 1


def test_batch_for_pads_least_and_keeps_results(predictors):
  """predict_sequences picks the batch that computes the fewest windows (plus a cost per
  pass): a fixed batch of 1024 would compute 3072 windows for 2400. Results do not change."""
  p = predictors(batch_size=1024, chunk_rows=256)  # 128 windows per chunk with flip
  assert [p.batch_for(t) for t in (1, 100, 129, 1024, 1025, 2400, 100000)] == [
      8, 104, 256, 1024, 384, 640, 1024]
  flat = predictors(batch_size=1024, chunk_rows=0, flip=False)
  assert [flat.batch_for(t) for t in (1, 100, 2400, 2399, 100000)] == [8, 104, 800, 800, 1000]
  for t in (1, 7, 100, 1025, 2400, 99_999):
    b = p.batch_for(t)
    assert b <= 1024 and (b % 128 == 0 or b <= 128)  # whole chunks, or within one
    assert -(-t // b) * b <= -(-t // 1024) * 1024
  rng = np.random.default_rng(3)
  seqs = [_keypoints(rng, t) for t in (4, 11, 6)]  # 21 windows
  small = predictors(batch_size=16)
  assert small.batch_for(21) == 16
  for got, want in zip(small.predict_sequences(seqs), predictors().predict_sequences(seqs)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_root_joint_zeroed(predictors):
  seq = _keypoints(np.random.default_rng(2), 6)
  raw = predictors(root_joint=None).predict_sequence(seq)
  zeroed = predictors(root_joint=0).predict_sequence(seq)
  assert np.abs(raw[:, 0]).max() > 1e-3
  np.testing.assert_array_equal(zeroed[:, 0], 0.0)
  np.testing.assert_allclose(zeroed[:, 1:], raw[:, 1:], rtol=1e-6, atol=1e-7)


def test_predictor_rejects_bad_input(tiny, predictors):
  from poseformer_jax.errors import ConfigError, DataError
  p = predictors()
  with pytest.raises(DataError):
    p.predict_sequence(np.zeros((10, 16, 2), np.float32))
  with pytest.raises(DataError):
    p.predict_sequence(np.zeros((0, J, 2), np.float32))
  common = dict(kps_left=LEFT, kps_right=RIGHT, joints_left=LEFT, joints_right=RIGHT)
  with pytest.raises(ConfigError):
    Predictor(*tiny, mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",)), **common)
  with pytest.raises(ConfigError):
    Predictor(*tiny, batch_size=0, **common)
  with pytest.raises(ConfigError):
    Predictor(*tiny, chunk_rows=-1, **common)
  with pytest.raises(ValueError):  # a joint swapped with two partners
    Predictor(*tiny, kps_left=(1, 2), kps_right=(2, 3), joints_left=LEFT, joints_right=RIGHT)


def test_predictor_with_mesh_matches(predictors):
  seq = _keypoints(np.random.default_rng(3), 11)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  bs = 8 * len(jax.devices())
  np.testing.assert_allclose(predictors(batch_size=bs, mesh=mesh).predict_sequence(seq),
                             predictors(batch_size=bs).predict_sequence(seq),
                             rtol=1e-5, atol=1e-6)


# ---- evaluation: pooling and averaging on hand-made sequences -----------------

class FakePredictor:
  """Returns fixed predictions (in the order evaluate passes sequences); records inputs."""

  def __init__(self, predictions):
    self.predictions = predictions
    self.inputs = None

  def predict_sequences(self, inputs, progress=None, latency=None):
    self.inputs = [np.array(x) for x in inputs]
    if progress is not None:
      progress(sum(len(x) for x in inputs))
    return [np.asarray(p[:len(x)], np.float32) for p, x in zip(self.predictions, inputs)]


def _target(rng, t, root=0):
  y = (rng.normal(size=(t, J, 3)) * 0.3).astype(np.float32)
  y[:, root] = 0.0
  return y


def _seq(subject, action, target, camera=0, valid=None, image_size=(1000, 1002)):
  t = len(target)
  kp = np.zeros((t, J, 2), np.float32)
  return Sequence(subject=subject, action=action, camera=camera, keypoints_2d=kp,
                  positions_3d=target, image_size=image_size, valid=valid)


def _direction(mm):
  return np.array([3.0, 4.0, 12.0], np.float32) / 13.0 * mm / 1000.0  # |.| = mm


# (subject, action, frames, constant offset mm)
LAYOUT = [("S9", "Walking 1", 10, 10.0), ("S9", "Walking", 20, 20.0),
          ("S11", "Walking", 30, 40.0), ("S9", "Eating", 15, 5.0)]


def _constant_offset_case():
  rng = np.random.default_rng(0)
  seqs, preds = [], []
  for i, (subject, action, t, mm) in enumerate(LAYOUT):
    y = _target(rng, t)
    seqs.append(_seq(subject, action, y, camera=i))
    preds.append(y + _direction(mm))
  return seqs, preds


def test_per_action_pooling_and_average():
  seqs, preds = _constant_offset_case()
  res = evaluation.evaluate(FakePredictor(preds), seqs, H36M_INFO, per_subject=True,
                            progress=False)
  walking = (10 * 10 + 20 * 20 + 30 * 40) / 60  # frame-weighted over takes, subjects
  assert list(res["actions"]) == ["Walking", "Eating"]
  assert res["actions"]["Walking"]["p1"] == pytest.approx(walking, rel=1e-4)
  assert res["actions"]["Eating"]["p1"] == pytest.approx(5.0, rel=1e-4)
  assert res["average"]["p1"] == pytest.approx((walking + 5.0) / 2, rel=1e-4)
  for entry in list(res["actions"].values()) + [res["average"]]:
    assert entry["p2"] == pytest.approx(0.0, abs=1e-3)  # a translation is aligned away
    assert entry["mpjve"] == pytest.approx(0.0, abs=1e-3)  # constant offset: no velocity error
  # P3 (scale only) cannot remove a translation: between 0 and P1.
  assert 0.0 < res["actions"]["Walking"]["p3"] < walking
  # P3 against the metric on the pooled frames.
  from poseformer_jax import metrics
  frames = np.concatenate([np.asarray(metrics.n_mpjpe(p, s.positions_3d))
                           for p, s in zip(preds[:3], seqs[:3])])
  assert res["actions"]["Walking"]["p3"] == pytest.approx(frames.mean() * 1000, rel=1e-4)
  # Per subject: the same protocol on each subject's sequences.
  s9, s11 = res["subjects"]["S9"], res["subjects"]["S11"]
  assert s9["actions"]["Walking"]["p1"] == pytest.approx((10 * 10 + 20 * 20) / 30, rel=1e-4)
  assert list(s11["actions"]) == ["Walking"]
  assert s11["actions"]["Walking"]["p1"] == pytest.approx(40.0, rel=1e-4)
  assert s9["average"]["p1"] == pytest.approx(((10 * 10 + 20 * 20) / 30 + 5) / 2, rel=1e-4)


def test_mpjve_per_sequence_frame_weighted():
  rng = np.random.default_rng(1)
  seqs, preds, speed = [], [], []
  for i, (subject, action, t, mm) in enumerate(LAYOUT):
    y = _target(rng, t)
    seqs.append(_seq(subject, action, y, camera=i))
    preds.append(y + _direction(mm) * np.arange(t, dtype=np.float32)[:, None, None])  # drift
    speed.append(mm)
  res = evaluation.evaluate(FakePredictor(preds), seqs, H36M_INFO, progress=False)
  # Drift of d per frame: every step's velocity error is |d|; sequences weighted by frames.
  assert res["actions"]["Walking"]["mpjve"] == pytest.approx(
      (10 * 10 + 20 * 20 + 30 * 40) / 60, rel=1e-4)
  assert res["actions"]["Eating"]["mpjve"] == pytest.approx(5.0, rel=1e-4)
  # P1 of a drift: |d| * mean(t) per sequence, pooled over frames.
  want = sum(t * mm * (t - 1) / 2 for _, a, t, mm in LAYOUT[:3]) / 60
  assert res["actions"]["Walking"]["p1"] == pytest.approx(want, rel=1e-4)


def test_valid_masks_and_target_root_zeroed():
  rng = np.random.default_rng(2)
  y = _target(rng, 12)
  pred = y + _direction(10.0)  # every joint 10 mm off (the root too: target root is 0)
  valid = np.ones(12, bool)
  valid[4:7] = False
  pred[4:7] += 5.0  # huge errors on invalid frames: must not count
  pred[8] += _direction(30.0)  # one valid frame 40 mm off
  target = y.copy()
  target[:, 0] = 0.7  # evaluate zeroes the target's root joint itself
  seqs = [_seq("TS1", "TS1", target, valid=valid)]
  res = evaluation.evaluate(FakePredictor([pred]), seqs, H36M_INFO, progress=False)
  p1 = res["actions"]["TS1"]["p1"]
  assert p1 == pytest.approx((8 * 10 + 40) / 9, rel=1e-4)
  # Velocity: valid steps 0-1,1-2,2-3,7-8,8-9,9-10,10-11; two of them (7-8, 8-9) see 30 mm.
  assert res["actions"]["TS1"]["mpjve"] == pytest.approx(2 * 30 / 7, rel=1e-4)
  # A sequence with no valid frame is not evaluated at all.
  seqs.append(_seq("TS2", "TS2", target, valid=np.zeros(12, bool)))
  res = evaluation.evaluate(FakePredictor([pred, pred]), seqs, H36M_INFO, progress=False)
  assert list(res["actions"]) == ["TS1"]
  assert res["average"]["p1"] == pytest.approx(p1, rel=1e-6)


def test_mpi_inf_3dhp_adds_pck_auc_and_zeroes_predicted_root():
  info = DatasetInfo(name="mpi_inf_3dhp", num_joints=J, root_joint=14,
                     kps_left=(5, 6, 7, 11, 12, 13), kps_right=(2, 3, 4, 8, 9, 10),
                     joints_left=(5, 6, 7, 11, 12, 13), joints_right=(2, 3, 4, 8, 9, 10))
  rng = np.random.default_rng(3)
  y = _target(rng, 8, root=14)
  pred = y.copy()
  pred[:, :7] += np.array([0.2, 0, 0], np.float32)  # 7 of the 14 scored joints 200 mm off
  pred[:, 15] += np.array([0.5, 0, 0], np.float32)  # unscored joint (spine): not in PCK, but in P1
  pred[:, 14] = 0.3  # the root: zeroed by the protocol
  res = evaluation.evaluate(FakePredictor([pred, pred]),
                            [_seq("TS1", "TS1", y), _seq("TS2", "TS2", y)], info,
                            progress=False)
  entry = res["actions"]["TS1"]
  assert entry["pck"] == pytest.approx(50.0)
  assert entry["auc"] == pytest.approx(100 * 0.5 * 30 / 31, rel=1e-5)
  assert entry["p1"] == pytest.approx((7 * 200 + 500) / 17, rel=1e-4)
  assert set(res) == {"actions", "average", "overall"}
  assert res["overall"]["pck"] == pytest.approx(50.0)


def test_noise_is_in_pixels_and_changes_results(predictors):
  rng = np.random.default_rng(4)
  y = _target(rng, 400)
  seq = _seq("S9", "Walking", y, image_size=(500, 400))
  fake = FakePredictor([y])
  evaluation.evaluate(fake, [seq], H36M_INFO, noise_std_px=5.0, progress=False)
  delta = fake.inputs[0] - seq.keypoints_2d
  assert np.std(delta) == pytest.approx(5.0 * 2 / 500, rel=0.05)  # pixels -> normalised
  assert np.mean(delta) == pytest.approx(0.0, abs=1e-3)
  evaluation.evaluate(fake, [seq], H36M_INFO, noise_std_px=0.0, progress=False)
  np.testing.assert_array_equal(fake.inputs[0], seq.keypoints_2d)
  # With a real network the noise moves the errors; the seed makes it reproducible.
  seq = _seq("S9", "Walking", y[:30])
  seq.keypoints_2d = _keypoints(rng, 30)
  pred = predictors()  # as make_predictor: flip, raw output (root kept)
  clean = evaluation.evaluate(pred, [seq], H36M_INFO, progress=False)
  noisy = evaluation.evaluate(pred, [seq], H36M_INFO, noise_std_px=20.0, seed=1, progress=False)
  again = evaluation.evaluate(pred, [seq], H36M_INFO, noise_std_px=20.0, seed=1, progress=False)
  assert noisy["average"]["p1"] != pytest.approx(clean["average"]["p1"], rel=1e-6)
  assert noisy == again


def test_real_predictor_matches_metrics_by_hand(tiny, predictors, naive):
  rng = np.random.default_rng(5)
  seqs = [_seq("S9", "Walking", _target(rng, 13)), _seq("S11", "Walking 1", _target(rng, 7))]
  for s in seqs:
    s.keypoints_2d = _keypoints(rng, len(s.keypoints_2d))
  made = evaluation.make_predictor(*tiny, H36M_INFO, batch_size=8)
  assert (made.root_joint, made.flip, made.batch_size) == (None, True, 8)
  res = evaluation.evaluate(predictors(), seqs, H36M_INFO, progress=False, max_frames=10)
  from poseformer_jax import metrics
  preds = [naive(s.keypoints_2d[:10], True) for s in seqs]
  targets = [s.positions_3d[:10] for s in seqs]
  p1 = np.concatenate([np.asarray(metrics.mpjpe(p, t)) for p, t in zip(preds, targets)])
  p2 = np.concatenate([np.asarray(metrics.p_mpjpe(p, t)) for p, t in zip(preds, targets)])
  v = [float(metrics.mpjve(p, t)) for p, t in zip(preds, targets)]
  entry = res["actions"]["Walking"]
  assert entry["p1"] == pytest.approx(p1.mean() * 1000, rel=1e-4)
  assert entry["p2"] == pytest.approx(p2.mean() * 1000, rel=1e-4)
  assert entry["mpjve"] == pytest.approx((10 * v[0] + 7 * v[1]) / 17 * 1000, rel=1e-4)


def test_json_shape_table_and_atomic_write(tmp_path):
  seqs, preds = _constant_offset_case()
  res = evaluation.evaluate(FakePredictor(preds), seqs, H36M_INFO, per_subject=True,
                            progress=False)
  assert set(res) == {"actions", "average", "subjects"}
  for entry in list(res["actions"].values()) + [res["average"]]:
    assert list(entry) == ["p1", "p2", "p3", "mpjve"]
    assert all(isinstance(v, float) for v in entry.values())
  assert set(res["subjects"]) == {"S9", "S11"}
  assert set(res["subjects"]["S9"]) == {"actions", "average"}
  out = tmp_path / "sub" / "results.json"
  evaluation.write_json_atomic(out, res)
  evaluation.write_json_atomic(out, res)  # overwriting a results file is fine
  assert json.loads(out.read_text()) == res
  assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temp file left
  table = evaluation.format_table(res)
  for word in ("Walking", "Eating", "Average", "Subject S11", "P1 mm", "MPJVE mm"):
    assert word in table
  assert f"{res['average']['p1']:.2f}" in table


# ---- run_eval / eval.py on a saved checkpoint and synthetic data ------------------

def _synthetic_config(root):
  import importlib.util
  spec = importlib.util.spec_from_file_location("h36m_config", REPO / "configs" / "h36m.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("27_3_3")
  config.data.root = str(root)
  config.data.keypoints = "gt"
  config.data.subjects_test = "S9,S11"
  config.data.synthetic.enabled = True
  config.data.synthetic.subjects = "S9,S11"
  config.data.synthetic.actions_per_subject = 2
  config.data.synthetic.frames = 40
  config.eval.batch_size = 64
  config.eval.max_frames = 20
  return config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny):
  import ml_collections
  from poseformer_jax import checkpoint as ckpt_lib
  from poseformer_jax import config_lib
  config = config_lib.base_config()
  config.model = ml_collections.ConfigDict(dict(
      num_frames=9, kept_frames=3, kept_coeffs=3, num_joints=J, embed_dim_ratio=8, depth=1,
      num_heads=2, mlp_ratio=2.0, qkv_bias=True, drop_path_rate=0.0, dtype="float32"))
  path = tmp_path_factory.mktemp("ckpt") / "model"
  ckpt_lib.save_params(path, tiny[1], config)
  return path


def test_run_eval_end_to_end(tmp_path, checkpoint, capsys):
  config = _synthetic_config(tmp_path / "data")
  out = tmp_path / "results.json"
  res = evaluation.run_eval(config, checkpoint, output=out, progress=False)
  assert json.loads(out.read_text()) == res
  assert set(res) == {"actions", "average"} and 1 <= len(res["actions"]) <= 4
  assert all(" " not in a for a in res["actions"])  # takes pooled by action name
  assert list(res["average"]) == ["p1", "p2", "p3", "mpjve"]
  assert all(np.isfinite(v) and v > 0 for v in res["average"].values())
  # The architecture comes from the checkpoint (F=9), not from the config (27_3_3).
  assert "differs from the checkpoint" in capsys.readouterr().err


def test_eval_cli_error_is_one_line(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, str(REPO / "eval.py"), "--config=configs/h36m.py:27_3_3",
       f"--checkpoint={tmp_path / 'missing'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines[-1].startswith("error: ") and "missing" in lines[-1]
  assert "Traceback" not in proc.stderr
