"""A video's stages overlapped: people lifted chunk by chunk while the video is detected,
rendering in a process of its own; ``--sequential`` writes the same files, byte for byte.

The command runs in this process on a small generated video whose detections are
synthetic (people.detect_people replaced by a replay of them: frame by frame, through the
same ``on_frame`` hook), so every case (gaps, frames without the person, a joint never
confident, a short track, the root trajectory) is exact and fast; the real detector runs
on a real clip in the last (slow) test.
"""

from __future__ import annotations

import importlib
import json
import re
import time

import numpy as np
import pytest

from poseformer_jax import gaps
from poseformer_jax.data import cameras
from poseformer_jax.lift_command import overlap
from poseformer_jax.lifter import Chunks
from poseformer_jax.video import people, render
from poseformer_jax.video.render_worker import RenderWorker
# The fixtures: an F=9 pose model with a trajectory model (random weights), and its Lifter.
from test_lift_trajectory import bundle, lifter  # noqa: F401
from test_lift_wild import mediapipe  # noqa: F401  (the fixture needs_mediapipe asks for)
from test_lift_wild import VIDEO_DIR, needs_mediapipe, needs_videos

lift_module = importlib.import_module("poseformer_jax.lift_command.main")
SIZE, FPS, FRAMES = (320, 240), 25.0, 90


def _walker(rng, t: int, x0: float) -> np.ndarray:
  """(t, 33, 2) MediaPipe-33 pixels of a stick figure walking across the image."""
  body = np.stack([rng.uniform(-15, 15, 33), np.linspace(-60, 60, 33)], -1)
  path = np.stack([x0 + np.linspace(0, 60, t), np.full(t, 120.0)], -1)
  return (body[None] + path[:, None] + rng.normal(0, 1.0, (t, 33, 2))).astype(np.float32)


def synthetic_people() -> dict[int, dict]:
  """Per frame, the people of the fake video, as `people.PeopleDetector.detect` gives them:
  track 0 throughout (a wrist unsure for a while, missed in frames 50-52), track 1 from frame
  10 to 60 (an ankle never sure before frame 40), track 2 in two frames only (too short for
  --person all), track 3 from frame 30 on with a knee never sure (low-confidence estimates)."""
  rng = np.random.default_rng(4)
  spans = {"0": (0, FRAMES), "1": (10, 61), "2": (70, 72), "3": (30, FRAMES)}
  frames: dict[int, dict] = {i: {} for i in range(FRAMES)}
  for tid, (a, b) in spans.items():
    kps = _walker(rng, b - a, 40 + 70 * int(tid))
    vis = np.full((b - a, 33), 0.9, np.float32)
    if tid == "0":
      vis[20 - a:31 - a, 15] = 0.05
    if tid == "1":
      vis[:40 - a, 28] = 0.05
    if tid == "3":
      vis[:, 25] = 0.05
    for k, i in enumerate(range(a, b)):
      if not (tid == "0" and 50 <= i <= 52):
        frames[i][tid] = (kps[k], vis[k])
  return frames


@pytest.fixture
def fake_video(tmp_path, monkeypatch):
  """A generated video (grey noise, FRAMES frames) whose detections are `synthetic_people`."""
  import imageio.v2 as iio
  path = tmp_path / "clip.mp4"
  rng = np.random.default_rng(0)
  with iio.get_writer(path, fps=FPS, codec="libx264", macro_block_size=16) as w:
    for _ in range(FRAMES):
      w.append_data(rng.integers(90, 160, (SIZE[1], SIZE[0], 3), np.uint8))
  found = synthetic_people()

  def detect_people(video, *, max_frames=None, progress=True, on_frame=None):
    seen: dict = {}
    n = min(FRAMES, max_frames or FRAMES)
    for i in range(n):
      time.sleep(0.002)  # a detector takes time: the lifting thread runs meanwhile
      for tid, person in found[i].items():
        seen.setdefault(tid, {})[i] = person
      if on_frame is not None:
        on_frame(i, found[i])
    return {"tracks": {t: people._track(f) for t, f in seen.items()}, "frames": n,
            "width": SIZE[0], "height": SIZE[1], "fps": FPS, "layout": "mediapipe33",
            "seconds": 0.1}

  monkeypatch.setattr(people, "detect_people", detect_people)
  return path


def run_lift(video, folder, *flags, capsys) -> str:
  folder.mkdir()
  args = [str(video), f"--render={folder / 'r.mp4'}", f"--gif={folder / 'r.gif'}",
          f"--output={folder / 'r.npz'}", "--no-progress", *flags]
  assert lift_module.main(args) == 0
  return capsys.readouterr().out


def same_files(a, b) -> list[str]:
  """The names of the files of folder `a`, after checking that folder `b` holds the same:
  npz by their arrays (the zip records a time), everything else byte for byte."""
  names = sorted(p.name for p in a.iterdir())
  assert names == sorted(p.name for p in b.iterdir())
  for name in names:
    if name.endswith(".npz"):
      with np.load(a / name) as x, np.load(b / name) as y:
        assert sorted(x.files) == sorted(y.files), name
        for key in x.files:
          np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}: {key}")
    else:
      assert (a / name).read_bytes() == (b / name).read_bytes(), name
  return names


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio starts ffmpeg
def test_overlapped_and_sequential_write_the_same_files(fake_video, bundle, tmp_path, capsys):
  """Every person (three tracks, the short one left out) with the root trajectory: the
  same npz arrays, JSON, BVH per track, mp4 and GIF; most frames lifted during detection."""
  flags = (f"--checkpoint={bundle}", "--chunk-size=8", "--fov=60")
  text = run_lift(fake_video, tmp_path / "a", *flags, capsys=capsys)
  # Settled frames are looked at every 2 frames (a quarter chunk). Track 0's last look
  # (frame 89) settles 90 frames: (90 - pad 4) // 8 = 10 chunks, 80 frames; track 1's (frame
  # 59) 50: 5 chunks; track 3 none (a joint never sure settles nothing); track 2 too short.
  assert re.search(r"\b120 frames during detection", text), text
  seq = run_lift(fake_video, tmp_path / "b", *flags, "--sequential", capsys=capsys)
  assert "during detection" not in seq and "\n  trajectory " in seq
  names = same_files(tmp_path / "a", tmp_path / "b")
  assert names == ["clip_mediapipe33.json", "r.gif", "r.json", "r.mp4", "r.npz",
                   "r_track0.bvh", "r_track1.bvh", "r_track3.bvh"]
  with np.load(tmp_path / "a" / "r.npz") as f:
    assert [str(t) for t in f["track_ids"]] == ["0", "1", "3"]
    for t, n in (("0", 90), ("1", 51), ("3", 60)):
      roots, poses = f[f"track_{t}_root_3d"], f[f"track_{t}_poses_3d_camera"]
      assert roots.shape == (n, 3) and (roots[:, 2] > 0.5).all()
      np.testing.assert_allclose(poses[:, 0], roots, atol=1e-6)
    assert f["track_3_low_confidence"][:, 5].all()  # the knee: estimates, marked
    data = json.loads((tmp_path / "a" / "r.json").read_text())
    row = data["tracks"][2]["frames"][7]
    assert row["frame"] == 37 and np.allclose(row["root_3d"], f["track_3_root_3d"][7], atol=1e-5)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_one_person_without_trajectory_the_same_files(fake_video, bundle, tmp_path, capsys):
  flags = (f"--checkpoint={bundle}", "--chunk-size=16", "--person=largest",
           "--no-trajectory", "--max-frames=80")
  text = run_lift(fake_video, tmp_path / "a", *flags, capsys=capsys)
  assert int(re.search(r"(\d+) frames during detection", text).group(1)) > 0
  run_lift(fake_video, tmp_path / "b", *flags, "--sequential", capsys=capsys)
  assert same_files(tmp_path / "a", tmp_path / "b") == [
      "clip_mediapipe33.json", "r.bvh", "r.gif", "r.json", "r.mp4", "r.npz"]
  with np.load(tmp_path / "a" / "r.npz") as f:
    assert "root_3d" not in f.files and f["poses_3d"].shape[1:] == (17, 3)


def test_settled_frames_are_those_no_later_frame_can_change():
  x = np.zeros((8, 3, 2))
  x[5:, 0] = np.nan   # joint 0 last present in frame 4
  x[2:4, 1] = np.nan  # a closed gap
  assert gaps.settled(x) == 5
  x[:, 2] = np.nan  # a joint never present: nothing is settled
  assert gaps.settled(x) == 0 and gaps.settled(np.zeros((0, 3, 2))) == 0
  rng = np.random.default_rng(0)
  clip = rng.uniform(0, 100, (40, 17, 2))
  clip[rng.uniform(size=(40, 17)) < 0.3] = np.nan
  checked = 0
  for n in range(5, 41, 5):
    done = gaps.settled(clip[:n])
    np.testing.assert_array_equal(gaps.fill_gaps(clip[:n])[0][:done],
                                  gaps.fill_gaps(clip)[0][:done])
    checked += done
  assert checked > 50


def _walk_pixels(t: int) -> np.ndarray:
  rng = np.random.default_rng(1)
  body = rng.normal(0, 30, (17, 2))
  return body[None] + np.stack([np.linspace(100, 220, t), np.full(t, 120.0)], -1)[:, None]


def test_chunks_lifted_as_frames_arrive_equal_the_whole_clip(lifter):
  """`Chunks.lift` with the frames known so far, then the rest: bit for bit what the
  chunked `Lifter` gives (poses and roots), and the whole-clip lift to float rounding."""
  kps = _walk_pixels(70)
  chunked = lifter(kps, SIZE, chunk_size=16)
  roots = lifter.roots(kps, SIZE, focal_px=300.0, chunk_size=16)
  chunks = Chunks(lifter, SIZE, 16, focal_px=300.0)
  parts = []
  for known in (10, 19, 20, 35, 36, 55):  # 16 + pad (4) = 20 frames complete the first chunk
    first, out = chunks.lift(kps, known=known)
    assert first == sum(len(p["poses_3d"]) for p in parts)
    parts.append(out)
  assert [len(p["root_3d"]) for p in parts] == [0, 0, 16, 0, 16, 16] and chunks.done == 48
  first, rest = chunks.lift(kps)
  assert first == 48 and len(rest["poses_3d"]) == 22
  parts.append(rest)
  np.testing.assert_array_equal(np.concatenate([p["poses_3d"] for p in parts]), chunked)
  np.testing.assert_array_equal(np.concatenate([p["root_3d"] for p in parts]), roots)
  np.testing.assert_allclose(chunked, lifter(kps, SIZE), atol=1e-5, rtol=0)
  np.testing.assert_allclose(roots, lifter.roots(kps, SIZE, focal_px=300.0), atol=1e-4,
                             rtol=1e-5)
  assert np.abs(chunked).max() > 0.05 and np.ptp(roots[:, 0]) > 0.05
  xn = cameras.normalize_screen(kps, *SIZE).astype(np.float32)
  p = lifter.predictor(16)
  np.testing.assert_allclose(p.predict_frames(xn, [3, 40, 69]),
                             p.predict_sequence(xn)[[3, 40, 69]], atol=1e-5, rtol=0)


def test_early_lift_keeps_what_it_saw_and_lifts_again_what_changed(lifter):
  """`EarlyLift` lifts settled chunks in its thread; `take` keeps them when the final fill
  agrees, and lifts the track again when it does not."""
  import types
  opts = types.SimpleNamespace(min_score=None)
  found = synthetic_people()
  early = overlap.EarlyLift(opts, lifter, SIZE, 300.0, 8, "mediapipe33")
  try:
    for i in range(FRAMES):
      early.add(i, found[i])
    early.wait()
    assert early.frames > 64 and len(early.early["0"]["parts"]) > 3
    assert "3" not in early.early  # a joint never sure: nothing settled before the end
    seen = early.early["0"]["seen"]
    det = people._track({i: f["0"] for i, f in found.items() if "0" in f})
    p = overlap.inputs.person("0", *det, "mediapipe33", None)
    kps = gaps.fill_gaps(gaps.use_estimates(p.keypoints, p.estimates)[0],
                         parents=overlap.skeleton.PARENTS)[0]
    np.testing.assert_array_equal(kps[:len(seen)], seen)
    got = early.take(dict(track="0", frames=p.frames, keypoints_2d=kps))
    want = Chunks(lifter, SIZE, 8, focal_px=300.0).lift(kps)[1]
    for key in ("poses_3d", "root_3d"):
      np.testing.assert_array_equal(got[key], want[key])
    moved = kps.copy()
    moved[3] += 40.0  # an early frame the chunks saw differently: lifted again
    got = early.take(dict(track="0", frames=p.frames, keypoints_2d=moved))
    np.testing.assert_array_equal(got["poses_3d"],
                                  Chunks(lifter, SIZE, 8).lift(moved)[1]["poses_3d"])
  finally:
    early.close()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_render_worker_writes_what_render_people_writes(tmp_path):
  rng = np.random.default_rng(3)
  t = 23
  person = dict(frames=np.arange(5, 5 + t), keypoints_2d=200 + np.cumsum(
      rng.normal(0, 3, (t, 17, 2)), 0), poses_3d=rng.normal(0, 0.3, (t, 17, 3)),
      root_3d=np.stack([np.linspace(-1, 1, t), np.zeros(t), np.full(t, 4.0)], -1),
      filled=rng.uniform(size=(t, 17)) < 0.1, low_confidence=rng.uniform(size=(t, 17)) < 0.1)
  one = [tmp_path / "a.mp4", tmp_path / "a.gif"]
  render.render_people(None, [person], one, 10, image_size=(640, 480), progress=False,
                       height=240)
  two = [tmp_path / "b.mp4", tmp_path / "b.gif"]
  with RenderWorker() as worker:
    worker.start(None, [person], two, 10, image_size=(640, 480), height=240)
    counts = []
    busy = worker.finish(counts.append)
    assert worker.done == t and counts[-1] == t and busy > 0
  for a, b in zip(one, two):
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 1000
  with RenderWorker() as worker:  # an error in the worker: one line, in the parent
    worker.start(None, [person], [tmp_path / "c.mkv"], 10, image_size=(640, 480))
    with pytest.raises(Exception, match=r"c\.mkv: unsupported video output"):
      worker.finish()


@pytest.mark.slow
@pytest.mark.real_data
@needs_videos
@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_real_clip_overlapped_equals_sequential(bundle, tmp_path, capsys):
  """MediaPipe on the first 48 frames of the skater clip: the same files either way."""
  flags = (f"--checkpoint={bundle}", "--chunk-size=8", "--max-frames=48")
  text = run_lift(VIDEO_DIR / "skater.mp4", tmp_path / "a", *flags, capsys=capsys)
  assert int(re.search(r"(\d+) frames during detection", text).group(1)) >= 16, text
  run_lift(VIDEO_DIR / "skater.mp4", tmp_path / "b", *flags, "--sequential", capsys=capsys)
  names = same_files(tmp_path / "a", tmp_path / "b")
  assert "r.mp4" in names and "skater_mediapipe33.json" in names



@pytest.mark.real_data
@needs_videos
@needs_mediapipe
def test_scans_side_by_side_find_the_same_people(monkeypatch):
  """A scan's regions on two landmarkers in two threads: the tracks of one after the other
  (three scans in 31 frames of the 1080p clip)."""
  found = []
  for threads in (1, 2):
    monkeypatch.setattr(people, "SCAN_THREADS", threads)
    found.append(people.detect_people(VIDEO_DIR / "ntu_S001C001P001R001A001.avi",
                                      max_frames=31, progress=False)["tracks"])
  assert list(found[0]) == list(found[1]) == ["0"]
  for one, two in zip(found[0]["0"], found[1]["0"]):
    np.testing.assert_array_equal(one, two)
  assert len(found[0]["0"][0]) == 31
