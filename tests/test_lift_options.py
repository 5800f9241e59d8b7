"""The lifting options, each checked by the values it changes.

`lift(flip=False)` / ``--no-flip``, ``--min-score`` and the (0, 0)-means-missing rule,
``--chunk-size``, ``--min-track-frames`` and ``--save-keypoints`` (with a scripted
stand-in for the people detector, so no detector model runs). A random-weight F=9 model keeps
compilation short, and the commands other than ``--no-flip``'s share one `Lifter` (its
compiled forward pass), handed to them where the command would load its own.
"""

from __future__ import annotations

import importlib
import json

import imageio.v2 as iio
import jax
import numpy as np
import pytest

from poseformer_jax.checkpoint import load_checkpoint
from poseformer_jax.data import cameras
from poseformer_jax.lift_command import pipeline
from poseformer_jax.lifter import Lifter, lift
from poseformer_jax.video import formats
from test_lift_wild import write_checkpoint

lift_module = importlib.import_module("poseformer_jax.lift_command.main")
SIZE = (640, 480)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  return write_checkpoint(tmp_path_factory.mktemp("options") / "ckpt", num_frames=9)


@pytest.fixture(scope="module")
def triple(ckpt):
  return load_checkpoint(ckpt)


@pytest.fixture(scope="module")
def lifter(ckpt):
  return Lifter(str(ckpt))


@pytest.fixture
def shared_lifter(ckpt, lifter, monkeypatch):
  """The command's `load_lifter` returns `lifter` (for the options it would build it with)."""
  def load(opts):
    assert (opts.checkpoint, opts.no_flip, opts.batch_size) == (str(ckpt), False, 1024)
    return lifter
  monkeypatch.setattr(pipeline, "load_lifter", load)
  return lifter


def _walk(t: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  base = rng.uniform(0.3, 0.7, (1, 17, 2)) * np.array(SIZE)
  return base + np.cumsum(rng.normal(0, 3.0, (t, 17, 2)), axis=0)


def _keypoint_file(path, kps, scores=None):
  """An h36m17 npz (third column = score) with the image size."""
  scores = np.full(kps.shape[:2], 0.9) if scores is None else scores
  np.savez(path, keypoints=np.concatenate([kps, scores[..., None]], -1), width=SIZE[0],
           height=SIZE[1], fps=25.0)
  return path


def _run(*args) -> int:
  return lift_module.main([*map(str, args), "--no-progress"])


# --- flip ---------------------------------------------------------------------------------------

def _plain_forward(triple, kps):
  """Edge-padded centred windows, one forward pass each, root zeroed: no flip averaging."""
  model, params, _ = triple
  x = cameras.normalize_screen(kps, *SIZE).astype(np.float32)
  pad, t = (model.num_frames - 1) // 2, len(kps)
  idx = np.clip(np.arange(t)[:, None] + np.arange(-pad, pad + 1), 0, t - 1)
  out = np.array(jax.jit(lambda v: model.apply({"params": params}, v))(x[idx]))[:, 0]
  out[:, 0] = 0
  return out


def test_no_flip_is_the_plain_forward_in_lift_and_cli(triple, lifter, ckpt, tmp_path):
  kps = _walk(14)
  plain = _plain_forward(triple, kps)
  np.testing.assert_allclose(lift(kps, SIZE, triple, flip=False), plain, atol=1e-5, rtol=0)
  assert np.abs(lift(kps, SIZE, lifter) - plain).max() > 1e-3  # flip averaging matters here
  kp = _keypoint_file(tmp_path / "k.npz", kps)
  out = tmp_path / "o.npz"
  assert _run(kp, "--format=h36m17", f"--checkpoint={ckpt}", f"--output={out}", "--no-flip") == 0
  with np.load(out) as f:
    np.testing.assert_allclose(f["poses_3d"], plain, atol=1e-5, rtol=0)


# --- missing joints: --min-score, (0, 0) --------------------------------------------------------

def test_min_score_and_zero_zero_mark_joints_missing():
  kps = _walk(6)
  scores = np.full((6, 17), 0.9)
  scores[1, 13] = 0.2                 # below the threshold: missing
  scores[2, 13] = 0.3                 # at the threshold: kept
  scores[3, 5] = np.nan               # no score: missing
  kps[4, 3] = 0.0                     # exactly (0, 0), "not found": missing at any score
  kps[5, 2] = (0.0, 37.0)             # x = 0 alone is a real position: kept
  scores[0, 9] = 0.5                  # kept at 0.3, missing at 0.6
  for min_score, extra in ((0.3, []), (0.6, [(0, 9), (2, 13)])):
    got = formats.to_h36m(kps, scores, "h36m17", min_score)
    want = np.zeros((6, 17), bool)
    for t, j in [(1, 13), (3, 5), (4, 3)] + extra:
      want[t, j] = True
    np.testing.assert_array_equal(np.isnan(got).any(-1), want, err_msg=str(min_score))
    np.testing.assert_array_equal(got[~want], kps[~want])


def test_min_score_flag_decides_what_is_filled(shared_lifter, ckpt, tmp_path):
  kps = _walk(12, seed=1)
  scores = np.full((12, 17), 0.9)
  scores[4:6, 13] = 0.5
  kps[7, 3] = 0.0
  kp = _keypoint_file(tmp_path / "k.npz", kps, scores)
  for flag, missing in ((None, [(7, 3)]), ("--min-score=0.6", [(7, 3), (4, 13), (5, 13)])):
    out = tmp_path / f"{flag is None}.npz"
    assert _run(kp, "--format=h36m17", f"--checkpoint={ckpt}", f"--output={out}",
                *([flag] if flag else [])) == 0
    holes = kps.copy()
    want = np.zeros((12, 17), bool)
    for t, j in missing:
      holes[t, j] = np.nan
      want[t, j] = True
    with np.load(out) as f:
      np.testing.assert_array_equal(f["filled"], want, err_msg=str(flag))
      np.testing.assert_allclose(f["poses_3d"], lift(holes, SIZE, shared_lifter), atol=1e-5,
                                 rtol=0)


# --- --chunk-size -------------------------------------------------------------------------------

def test_chunk_size_flag_reaches_the_lifter(shared_lifter, ckpt, tmp_path, monkeypatch):
  seen = []
  call = Lifter.__call__

  def spy(self, keypoints_2d, image_size, *, chunk_size=None, progress=None):
    seen.append(chunk_size)
    return call(self, keypoints_2d, image_size, chunk_size=chunk_size, progress=progress)

  monkeypatch.setattr(Lifter, "__call__", spy)
  kps = _walk(16, seed=2)
  kp = _keypoint_file(tmp_path / "k.npz", kps)
  assert _run(kp, "--format=h36m17", f"--checkpoint={ckpt}", f"--output={tmp_path / 'o.npz'}",
              "--chunk-size=5") == 0
  assert seen == [5]
  whole = shared_lifter(kps, SIZE)
  with np.load(tmp_path / "o.npz") as f:  # 5 chunks with context: the whole clip's result
    np.testing.assert_allclose(f["poses_3d"], whole, atol=1e-5, rtol=0)


# --- --min-track-frames -------------------------------------------------------------------------

def test_min_track_frames_keeps_the_long_enough_tracks(shared_lifter, ckpt, tmp_path, capsys):
  spans = {"1": range(0, 6), "2": range(0, 4), "3": range(2, 4)}  # 6, 4 and 2 frames
  rng = np.random.default_rng(3)
  records = [{"image_id": f, "track_id": track,
              "keypoints": np.c_[rng.uniform(100, 500, (17, 2)), np.full(17, 0.9)]
              .ravel().round(2).tolist()} for track, span in spans.items() for f in span]
  path = tmp_path / "people.json"
  path.write_text(json.dumps(records))
  common = [path, "--format=coco17", "--image-size=640,480", f"--checkpoint={ckpt}",
            "--overwrite", f"--output={tmp_path / 'o.npz'}"]
  for n, kept in ((1, ["1", "2", "3"]), (3, ["1", "2"]), (5, ["1"])):
    assert _run(*common, f"--min-track-frames={n}") == 0
    with np.load(tmp_path / "o.npz") as f:
      assert f["track_ids"].tolist() == kept, n
      np.testing.assert_array_equal(f["track_1_frames"], np.arange(6))
    dropped = [t for t in spans if t not in kept]
    out = capsys.readouterr().out
    assert (f"skipped tracks shorter than {n} frames: {', '.join(dropped)}" in out) == bool(
        dropped), out
  assert _run(*common, "--min-track-frames=7") == 2
  assert "no track has 7 or more frames (longest: 6)" in capsys.readouterr().err


# --- --save-keypoints ---------------------------------------------------------------------------

class ScriptedPeople:
  """Stands in for `people.PeopleDetector`: one person with known MediaPipe-33 keypoints per
  frame (track "0"), nobody in frame 3 (as the detector reports a frame without anyone)."""

  layout = "mediapipe33"
  rng = np.random.default_rng(4)
  keypoints = rng.uniform(20, 140, (8, 33, 2)).astype(np.float32)
  visibility = rng.uniform(0.5, 1.0, (8, 33)).astype(np.float32)

  def __init__(self, image_size, fps):
    self.frame = 0

  def detect(self, frame):
    i, self.frame = self.frame, self.frame + 1
    return {} if i == 3 else {"0": (self.keypoints[i], self.visibility[i])}

  def close(self):
    pass


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio starts ffmpeg
def test_save_keypoints_writes_the_detections(shared_lifter, ckpt, tmp_path, monkeypatch):
  from poseformer_jax.video import people, tracks
  monkeypatch.setattr(people, "PeopleDetector", ScriptedPeople)
  video = tmp_path / "clip.mp4"
  with iio.get_writer(video, fps=10, macro_block_size=16) as w:
    for i in range(8):
      w.append_data(np.full((128, 160, 3), 30 * i, np.uint8))
  saved = tmp_path / "dets.json"
  assert _run(video, "--person=largest", f"--checkpoint={ckpt}",
              f"--output={tmp_path / 'o.npz'}", f"--save-keypoints={saved}") == 0
  found = tracks.read_tracks(saved, "mediapipe33")
  frames, keypoints, scores = found["0"]
  np.testing.assert_array_equal(frames, np.arange(8))
  seen = np.arange(8) != 3
  np.testing.assert_array_equal(keypoints[seen], ScriptedPeople.keypoints[seen])
  np.testing.assert_array_equal(scores[seen], ScriptedPeople.visibility[seen])
  assert np.isnan(keypoints[3]).all() and (scores[3] == 0).all()
  assert tracks.records_info(saved) == ((160, 128), 10.0)
  # Read back, the file gives the clip that was lifted.
  back = formats.to_h36m(keypoints, scores, "mediapipe33")
  with np.load(tmp_path / "o.npz") as f:
    assert f["filled"][3].all() and not f["filled"][seen].any()
    np.testing.assert_allclose(f["keypoints_2d"][seen], back[seen], atol=1e-4)
    np.testing.assert_allclose(f["poses_3d"], lift(back, (160, 128), shared_lifter), atol=1e-5,
                               rtol=0)
