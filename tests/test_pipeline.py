"""The training input pipeline: windows, flip, order, resume, sharding, backends."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from poseformer_jax.data import dataset, pipeline, skeleton, windows
from poseformer_jax.errors import ConfigError

from conftest import REPO_ROOT, require

F = 27
G = 64   # 2 subjects x 2 actions x 4 cameras x 120 frames x 2 (flip) = 3840 = 60 x 64


@pytest.fixture(scope="module")
def train_data(synthetic_h36m_root):
  from poseformer_jax import config_lib
  cfg = config_lib.base_config().data
  cfg.root, cfg.subjects_train = str(synthetic_h36m_root), "S1,S5"
  return dataset.load_sequences(cfg, "train")


def make(train_data, **kw):
  seqs, info = train_data
  args = dict(num_frames=F, global_batch=G, seed=0, backend="numpy", prefetch=2)
  args.update(kw)
  return pipeline.TrainPipeline(seqs, info, **args)


def edge_window(seq: np.ndarray, t: int, pad: int) -> np.ndarray:
  """Reference: np.pad 'edge' then slice (upstream's padding)."""
  padded = np.pad(seq, ((pad, pad), (0, 0), (0, 0)), mode="edge")
  return padded[t:t + 2 * pad + 1]


def test_sizes(train_data):
  p = make(train_data)
  assert p.num_base == 1920 and p.num_samples == 3840
  assert p.steps_per_epoch == 60 and p.local_batch == 64
  q = make(train_data, flip=False, global_batch=100)
  assert q.num_samples == 1920 and q.steps_per_epoch == 19       # last partial batch dropped
  ids = np.concatenate([q.sample_ids(0, k) for k in range(q.steps_per_epoch)])
  assert len(set(ids.tolist())) == 1900
  b = q.batch(0, 3)
  assert b["inputs"].shape == (100, F, 17, 2) and b["inputs"].dtype == np.float32
  assert b["targets"].shape == (100, 1, 17, 3) and b["targets"].dtype == np.float32


@pytest.mark.parametrize("frames", [F, 243])
def test_window_contents_at_borders(train_data, frames):
  seqs, _ = train_data
  p = make(train_data, num_frames=frames)
  pad = (frames - 1) // 2
  starts = np.cumsum([0] + [len(s) for s in seqs])
  cases = [(0, 0), (0, 5), (1, 0), (1, 119), (3, 60), (len(seqs) - 1, 119), (7, 118)]
  ids = np.array([starts[s] + t for s, t in cases])
  out = p.gather(ids)
  for i, (s, t) in enumerate(cases):
    np.testing.assert_array_equal(out["inputs"][i], edge_window(seqs[s].keypoints_2d, t, pad))
    np.testing.assert_array_equal(out["targets"][i, 0], seqs[s].positions_3d[t])
  # the first frame's window starts with pad copies of frame 0
  np.testing.assert_array_equal(out["inputs"][0, :pad + 1], np.broadcast_to(
      seqs[0].keypoints_2d[0], (pad + 1, 17, 2)))


def test_latency_windows_see_n_frames_after_the_centre():
  """A window with latency N holds the frames up to N after its centre, then repeats frame
  centre + N (as at a sequence's end); at N = pad it is the centred window. Frame values are
  their indices, so each window reads as the frames it holds."""
  bank = windows.SequenceBank([np.arange(10), np.arange(100, 104)])
  rows = lambda ids, latency: bank.windows(np.array(ids), 3, latency).tolist()  # noqa: E731
  assert rows([4], 1) == [[1, 2, 3, 4, 5, 5, 5]]
  assert rows([4], 0) == [[1, 2, 3, 4, 4, 4, 4]]
  assert rows([0, 9], 1) == [[0, 0, 0, 0, 1, 1, 1], [6, 7, 8, 9, 9, 9, 9]]
  assert rows([10, 12], 2) == [[100, 100, 100, 100, 101, 102, 102],  # never past a sequence
                               [100, 100, 101, 102, 103, 103, 103]]
  assert rows(range(14), 3) == rows(range(14), None) == [
      [int(bank.data[bank.starts[q] + np.clip(t + k, 0, bank.lengths[q] - 1)])
       for k in range(-3, 4)] for q, t in zip(bank.sample_seq, bank.sample_frame)]
  six = windows.window_index(np.zeros(6), np.full(6, 6), np.arange(6), 2, latency=0)
  assert six.tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 1, 1], [0, 1, 2, 2, 2], [1, 2, 3, 3, 3],
                          [2, 3, 4, 4, 4], [3, 4, 5, 5, 5]]
  for bad in (-1, 4, 1.5, True, "2"):
    with pytest.raises(ConfigError, match=r"latency must be an integer from 0 to 3"):
      bank.index(np.array([0]), 3, bad)


def test_flipped_samples(train_data):
  seqs, info = train_data
  p = make(train_data)
  ids = np.array([0, 17, 1919, 700])
  plain, mirrored = p.gather(ids), p.gather(ids + p.num_base)
  np.testing.assert_array_equal(mirrored["inputs"],
                                skeleton.flip_2d(plain["inputs"], info.kps_left, info.kps_right))
  np.testing.assert_array_equal(mirrored["targets"], skeleton.flip_3d(
      plain["targets"], info.joints_left, info.joints_right))
  np.testing.assert_array_equal(mirrored["targets"][:, :, 0], 0)  # root stays at 0
  assert not np.array_equal(mirrored["inputs"], plain["inputs"])
  # the mirrored left wrist is the negated-x right wrist
  np.testing.assert_array_equal(mirrored["inputs"][:, :, 13, 0], -plain["inputs"][:, :, 16, 0])


def test_epoch_covers_every_sample_once_with_flip(train_data):
  p = make(train_data)
  batches = list(p.epoch(0))
  assert len(batches) == 60
  # every (window centre, flip) pair exactly once: compare with a direct gather of all ids
  got = np.concatenate([b["targets"] for b in batches])[:, 0]
  expect = p.gather(np.arange(p.num_samples))["targets"][:, 0]
  order = lambda a: np.lexsort(a.reshape(len(a), -1).T)
  np.testing.assert_array_equal(got[order(got)], expect[order(expect)])


def test_deterministic_and_mid_epoch_restart(train_data):
  a, b = make(train_data), make(train_data, prefetch=0)
  ea = list(a.epoch(3))
  eb = list(b.epoch(3))
  for x, y in zip(ea, eb):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
    np.testing.assert_array_equal(x["targets"], y["targets"])
  assert not np.array_equal(list(a.epoch(4))[0]["targets"], ea[0]["targets"])   # reshuffled
  assert not np.array_equal(make(train_data, seed=1).batch(3, 0)["targets"], ea[0]["targets"])
  resumed = list(make(train_data).epoch(3, start_step=41))
  assert len(resumed) == 60 - 41
  for x, y in zip(resumed, ea[41:]):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
    np.testing.assert_array_equal(x["targets"], y["targets"])
  assert list(a.epoch(3, start_step=60)) == []
  expected_perm = np.random.default_rng([0, 3]).permutation(3840)
  np.testing.assert_array_equal(a.sample_ids(3, 2), expected_perm[128:192])


def test_per_process_sharding(train_data):
  whole = make(train_data)
  shards = [make(train_data, process_index=i, process_count=2) for i in range(2)]
  assert [s.local_batch for s in shards] == [32, 32]
  ids = [np.concatenate([s.sample_ids(2, k) for k in range(s.steps_per_epoch)]) for s in shards]
  assert not set(ids[0].tolist()) & set(ids[1].tolist())                      # disjoint
  assert sorted(ids[0].tolist() + ids[1].tolist()) == list(range(3840))        # union = the epoch
  # each global batch is the concatenation of the process-local batches, in process order
  for k in (0, 13, 59):
    parts = [s.batch(2, k) for s in shards]
    full = whole.batch(2, k)
    for key in ("inputs", "targets"):
      np.testing.assert_array_equal(np.concatenate([q[key] for q in parts]), full[key])
  it = shards[1].epoch(2, start_step=13)
  np.testing.assert_array_equal(next(it)["inputs"], shards[1].batch(2, 13)["inputs"])


def test_tf_and_numpy_backends_identical(train_data):
  require("tensorflow")
  for kw in (dict(), dict(process_index=1, process_count=2, flip=False)):
    tfp, npp = make(train_data, backend="tf", **kw), make(train_data, backend="numpy", **kw)
    got_tf, got_np = list(tfp.epoch(5, start_step=7)), list(npp.epoch(5, start_step=7))
    assert len(got_tf) == len(got_np) == npp.steps_per_epoch - 7
    for x, y in zip(got_tf, got_np):
      assert set(x) == {"inputs", "targets"}
      assert x["inputs"].dtype == np.float32 and x["inputs"].shape == y["inputs"].shape
      np.testing.assert_array_equal(x["inputs"], y["inputs"])
      np.testing.assert_array_equal(x["targets"], y["targets"])
  big_tf = make(train_data, backend="tf", num_frames=243).epoch(0)
  big_np = make(train_data, backend="numpy", num_frames=243).epoch(0)
  for _ in range(2):
    np.testing.assert_array_equal(next(big_tf)["inputs"], next(big_np)["inputs"])


def test_numpy_backend_needs_no_tensorflow(synthetic_h36m_root):
  code = f"""
import sys
sys.modules['tensorflow'] = None          # any 'import tensorflow' now fails
from poseformer_jax import config_lib
from poseformer_jax.data import dataset, pipeline
cfg = config_lib.base_config().data
cfg.root, cfg.subjects_train = {str(synthetic_h36m_root)!r}, 'S1'
seqs, info = dataset.load_sequences(cfg, 'train')
p = pipeline.TrainPipeline(seqs, info, num_frames=27, global_batch=32, seed=0, backend='numpy')
n = sum(1 for _ in p.epoch(0))
assert n == p.steps_per_epoch == 60, n
print('ok')
"""
  r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_bad_arguments(train_data):
  with pytest.raises(ConfigError, match="multiple of the process count 3"):
    make(train_data, process_count=3)
  with pytest.raises(ConfigError, match="odd"):
    make(train_data, num_frames=26)
  with pytest.raises(ConfigError, match="backend"):
    make(train_data, backend="torch")
  with pytest.raises(ConfigError, match="fewer than one global batch"):
    make(train_data, global_batch=4096)
  with pytest.raises(ConfigError, match="start_step"):
    next(make(train_data).epoch(0, start_step=61))
  seqs, info = train_data
  with pytest.raises(ConfigError, match="positions_3d"):
    pipeline.TrainPipeline([dataset.Sequence("S1", "a", 0, seqs[0].keypoints_2d, None, (1000, 1000))],
                           info, num_frames=F, global_batch=G, seed=0)
