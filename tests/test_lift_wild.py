"""From a raw video to 3D: streaming = offline, several people, the one command, hostile inputs.

Random-weight models (F=27, narrow) keep compilation short; the real clips of
../shared/data/video run through MediaPipe (skipped when the clips or MediaPipe
are absent).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT, SHARED_DATA, require
from poseformer_jax import config_lib
from poseformer_jax import model as model_lib
from poseformer_jax.checkpoint import save_params
from poseformer_jax.errors import ConfigError, DataError
from poseformer_jax import Lifter, StreamingLifter, gaps, lift
from poseformer_jax.video import detect, formats, tracks

lift_module = importlib.import_module("poseformer_jax.lift_command.main")
VIDEO_DIR = SHARED_DATA / "video"
CLIPS = {"skater.mp4": (1280, 720), "ntu_S001C001P001R001A001.avi": (1920, 1080)}
needs_videos = pytest.mark.skipif(not VIDEO_DIR.is_dir(), reason=f"no clips at {VIDEO_DIR}")


@pytest.fixture
def mediapipe():
  """MediaPipe, or a skip (a failure under CI=true) with the install command."""
  return require("mediapipe", "make install-detect")


needs_mediapipe = pytest.mark.usefixtures("mediapipe")


def write_checkpoint(directory: Path, num_frames: int = 27) -> Path:
  """Random weights of a narrow PoseFormerV2 with an F-frame receptive field."""
  config = config_lib.base_config()
  config_lib.set_variant(config, "27_3_3")
  config.model.num_frames, config.model.kept_frames, config.model.kept_coeffs = num_frames, 3, 3
  config.model.embed_dim_ratio, config.model.depth, config.model.num_heads = 8, 2, 2
  model = model_lib.from_config(config.model)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, num_frames, 17, 2)))["params"]
  rng = np.random.default_rng(num_frames)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name:
      return np.ones(leaf.shape, np.float32)
    return (np.zeros(leaf.shape) if "bias" in name else rng.normal(0, 0.05, leaf.shape)
            ).astype(np.float32)
  return save_params(directory, jax.tree_util.tree_map_with_path(draw, shapes), config)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
  return write_checkpoint(tmp_path_factory.mktemp("wild") / "ckpt")


@pytest.fixture(scope="module")
def lifter(ckpt_dir) -> Lifter:
  return Lifter(str(ckpt_dir))


def skater_keypoints(frames: int | None = None):
  kps, size, _ = formats.load_keypoints(REPO_ROOT / "examples" / "skater_mediapipe33.npz",
                                        "mediapipe33")
  filled, _ = gaps.fill_gaps(kps[:frames])
  return filled, size


def run_cli(*args, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "poseformer_jax", *map(str, args)],
                        capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


def one_line_error(proc, *needles) -> str:
  assert proc.returncode == 2, (proc.stdout, proc.stderr[-2000:])
  lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
  for needle in needles:
    assert str(needle) in lines[0], (needle, lines[0])
  return lines[0]


# --- streaming ----------------------------------------------------------------------------------

def stream_all(stream: StreamingLifter, keypoints) -> np.ndarray:
  out = []
  for i, kp in enumerate(keypoints):
    pose = stream.push(kp)
    assert (pose is None) == (i < stream.latency), i  # the pose of frame i - latency
    if pose is not None:
      out.append(pose)
  return np.concatenate([np.reshape(out, (-1, 17, 3)), stream.flush()])


def test_streaming_equals_offline_on_a_real_clip(lifter):
  """Frame by frame through the centred window, start and end edge padding included."""
  kps, size = skater_keypoints(120)
  offline = lift(kps, size, lifter)
  stream = StreamingLifter(lifter, size)
  assert stream.latency == 13
  online = stream_all(stream, kps)
  assert online.shape == offline.shape
  assert np.abs(online - offline).max() <= 1e-5
  # Short clips: shorter than the latency, and exactly one window long.
  for t in (1, 5, 13, 14, 27):
    got = stream_all(stream, kps[:t])
    np.testing.assert_allclose(got, lift(kps[:t], size, lifter), atol=1e-5, rtol=0)


def test_streaming_latency_gives_the_predictors_latency_windows(lifter):
  """latency=N answers N frames after a frame arrives (None before), each window seeing N
  frames after its centre: the poses `Predictor.predict_sequence(x, latency=N)` gives for
  the whole clip. N < pad changes them (so the check can fail); N = pad is offline."""
  from poseformer_jax.data import cameras
  kps, size = skater_keypoints(60)
  x = cameras.normalize_screen(kps, *size).astype(np.float32)
  predictor = lifter.predictor(64)
  offline = lift(kps, size, lifter)
  for n in (0, 4, 13):
    stream = StreamingLifter(lifter, size, latency=n)
    assert stream.latency == n
    online = stream_all(stream, kps)
    np.testing.assert_allclose(online, predictor.predict_sequence(x, latency=n), atol=1e-5,
                               rtol=0)
    assert (np.abs(online - offline).max() <= 1e-5) == (n == 13)
  with pytest.raises(ConfigError, match=r"latency must be an integer from 0 to 13"):
    StreamingLifter(lifter, size, latency=14)


def test_streaming_holds_missing_joints_and_skips_the_unseen_start(lifter):
  kps, size = skater_keypoints(40)
  holes = kps.copy()
  holes[:3] = np.nan  # nobody yet: skipped
  holes[20:23, 13] = np.nan  # left wrist lost for three frames: held at frame 19's position
  stream = StreamingLifter(lifter, size, record=True)
  poses = [p for p in (stream.push(k) for k in holes) if p is not None]
  poses = np.concatenate([np.reshape(poses, (-1, 17, 3)), stream.flush()])
  assert stream.first_frame == 3 and len(poses) == 37
  held = kps[3:].copy()
  held[17:20, 13] = kps[19, 13]
  np.testing.assert_array_equal(np.stack(stream.history["keypoints_2d"]), held)
  assert np.stack(stream.history["filled"])[17:20, 13].all()
  np.testing.assert_allclose(poses, lift(held, size, lifter), atol=1e-5, rtol=0)
  with pytest.raises(DataError, match=r"shape \(17, 2\)"):
    stream.push(np.zeros((33, 2)))


def test_stream_cli_equals_offline_cli(tmp_path, ckpt_dir):
  clip = REPO_ROOT / "examples" / "ntu_S001C001P001R001A001_mediapipe33.npz"
  for extra, name in (([], "off.npz"), (["--stream"], "on.npz")):
    assert lift_module.main([str(clip), f"--checkpoint={ckpt_dir}", "--no-progress",
                             f"--output={tmp_path / name}", *extra]) == 0
  with np.load(tmp_path / "off.npz") as a, np.load(tmp_path / "on.npz") as b:
    assert a["poses_3d"].shape == b["poses_3d"].shape == (103, 17, 3)
    assert np.abs(a["poses_3d"] - b["poses_3d"]).max() <= 1e-5


def test_stream_cli_latency(tmp_path, ckpt_dir):
  """--latency N: the poses `StreamingLifter(latency=N)` gives; a one-line error out of range
  or without --stream."""
  clip = REPO_ROOT / "examples" / "ntu_S001C001P001R001A001_mediapipe33.npz"
  base = [str(clip), f"--checkpoint={ckpt_dir}", "--no-progress", "--stream"]
  for n, name in ((None, "full.npz"), (3, "soon.npz")):
    extra = [] if n is None else [f"--latency={n}"]
    assert lift_module.main([*base, f"--output={tmp_path / name}", *extra]) == 0
  with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "soon.npz") as b:
    kps, size = b["keypoints_2d"], tuple(int(v) for v in b["image_size"])
    stream = StreamingLifter(str(ckpt_dir), size, latency=3)
    want = np.concatenate([np.reshape([q for q in map(stream.push, kps) if q is not None],
                                      (-1, 17, 3)), stream.flush()])
    np.testing.assert_allclose(b["poses_3d"], want, atol=1e-5, rtol=0)
    assert np.abs(a["poses_3d"] - b["poses_3d"]).max() > 1e-3
  for extra, needle in ((["--latency=14"], "latency must be an integer from 0 to 13"),
                        (["--latency=-1"], "latency must be an integer from 0 to 13")):
    proc = run_cli("lift", *base, f"--output={tmp_path / 'x.npz'}", *extra)
    one_line_error(proc, needle)
  proc = run_cli("lift", str(clip), f"--checkpoint={ckpt_dir}", "--latency=3",
                 f"--output={tmp_path / 'x.npz'}")
  one_line_error(proc, "--latency is for online lifting")
  assert not (tmp_path / "x.npz").exists()


# --- several people -----------------------------------------------------------------------------

def two_people(tmp_path: Path, style: str = "records") -> tuple[Path, dict]:
  """Person 3 in frames 0-29 (missing in 10-12), person 7 in frames 5-34, a one-frame track 9."""
  rng = np.random.default_rng(1)
  base = {3: np.array([200.0, 150.0]), 7: np.array([450.0, 160.0]), 9: np.array([600.0, 50.0])}
  spans = {3: range(0, 30), 7: range(5, 35), 9: range(12, 13)}
  truth, records = {}, []
  for track, span in spans.items():
    coco = base[track] + rng.uniform(-60, 60, (17, 2)) + np.cumsum(
        rng.normal(0, 2, (len(span), 17, 2)), 0)
    truth[track] = (np.array(span), coco)
    for f, pts in zip(span, coco):
      if track == 3 and 10 <= f <= 12:
        continue
      records.append({"image_id": f"frame_{f:05d}.jpg", "category_id": 1, "score": 0.9,
                      "keypoints": np.concatenate([pts, np.full((17, 1), 0.9)], 1).ravel()
                      .round(2).tolist(), "idx": track})
  rng.shuffle(records)
  path = tmp_path / f"people_{style}.json"
  if style == "mmpose":
    frames = {}
    for r in records:
      frames.setdefault(int(r["image_id"][6:11]), []).append(
          {"keypoints": np.reshape(r["keypoints"], (17, 3))[:, :2].tolist(),
           "keypoint_scores": [0.9] * 17, "track_id": r["idx"]})
    path.write_text(json.dumps({"meta_info": {}, "instance_info": [
        {"frame_id": f, "instances": inst} for f, inst in sorted(frames.items())]}))
  else:
    path.write_text(json.dumps(records))
  return path, truth


def test_tracks_read_per_person_records(tmp_path):
  path, truth = two_people(tmp_path)
  found = tracks.read_tracks(path, "coco17")
  assert tracks.sort_ids(found) == ["3", "7", "9"]
  frames, raw, scores = found["3"]
  assert raw.shape == (30, 17, 2) and scores.shape == (30, 17) and (scores[10:13] == 0).all()
  kps = formats.to_h36m(raw, scores, "coco17")
  np.testing.assert_array_equal(frames, np.arange(30))
  assert np.isnan(kps[10:13]).all() and not np.isnan(kps[:10]).any()
  np.testing.assert_allclose(kps[0], formats.coco_to_h36m(truth[3][1][0]), atol=0.01)
  np.testing.assert_array_equal(found["7"][0], np.arange(5, 35))
  mm = tracks.read_tracks(two_people(tmp_path, "mmpose")[0], "coco17")
  for t in found:
    for a, b in zip(mm[t], found[t]):
      np.testing.assert_allclose(a, b, equal_nan=True)


def test_two_person_file_lifted_per_track(tmp_path, ckpt_dir, lifter, capsys):
  path, _ = two_people(tmp_path)
  out = tmp_path / "out.npz"
  assert lift_module.main([str(path), "--format=coco17", "--image-size=800,600", "--fps=30",
                           f"--checkpoint={ckpt_dir}", f"--output={out}",
                           f"--json={tmp_path / 'out.json'}", f"--bvh={tmp_path / 'o.bvh'}",
                           "--no-progress"]) == 0
  text = capsys.readouterr().out
  assert "skipped tracks shorter than 3 frames: 9" in text
  found = tracks.read_tracks(path, "coco17")
  doc = json.loads((tmp_path / "out.json").read_text())
  with np.load(out) as f:
    assert f["track_ids"].tolist() == ["3", "7"]
    for k, track in enumerate(("3", "7")):
      frames, raw, scores = found[track]
      alone = lift(formats.to_h36m(raw, scores, "coco17"), (800, 600), lifter)  # each track filled and lifted on its own
      np.testing.assert_allclose(f[f"track_{track}_poses_3d"], alone, atol=1e-5, rtol=0)
      np.testing.assert_array_equal(f[f"track_{track}_frames"], frames)
      filled_frames = np.flatnonzero(f[f"track_{track}_filled"].any(-1))
      assert filled_frames.tolist() == ([10, 11, 12] if track == "3" else [])
      entry = doc["tracks"][k]
      assert entry["track_id"] == track and entry["frames"][0]["frame"] == frames[0]
      np.testing.assert_allclose(entry["frames"][-1]["pose_3d"], alone[-1], atol=1e-5)
  assert (tmp_path / "o_track3.bvh").is_file() and (tmp_path / "o_track7.bvh").is_file()
  # One track alone works like a one-person file (frames keep their video numbers).
  assert lift_module.main([str(path), "--format=coco17", "--image-size=800,600", "--track=7",
                           f"--checkpoint={ckpt_dir}", f"--output={tmp_path / 't7.npz'}",
                           "--no-progress"]) == 0
  with np.load(tmp_path / "t7.npz") as f:
    assert f["first_frame"] == 5 and f["poses_3d"].shape == (30, 17, 3)


def test_poseformer_jax_command(capsys):
  main = importlib.import_module("poseformer_jax.__main__").main
  assert main(["--help"]) == 0 and "lift" in capsys.readouterr().out
  assert main(["lfit"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "unknown command 'lfit'" in err
  assert main(["lift", "--help"]) == 0 and "--max-frames" in capsys.readouterr().out
  assert main(["export", "--help"]) == 0 and "--format" in capsys.readouterr().out
  text = (REPO_ROOT / "pyproject.toml").read_text()
  assert 'poseformer-jax = "poseformer_jax.__main__:main"' in text


# --- hostile inputs -----------------------------------------------------------------------------

@pytest.mark.slow
def test_hostile_inputs_one_line_errors_nothing_written(tmp_path, ckpt_dir):
  bad_video = tmp_path / "broken.mp4"
  bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
  one_frame = tmp_path / "one_frame.json"
  one_frame.write_text(json.dumps([{"image_id": 4, "keypoints": [100.0, 100.0, 0.9] * 17,
                                    "track_id": 1}]))
  no_ids = tmp_path / "no_ids.json"
  no_ids.write_text(json.dumps([{"image_id": f // 2, "keypoints": [100.0 + f, 90.0, 0.9] * 17}
                                for f in range(6)]))
  existing = tmp_path / "out.npz"
  existing.write_bytes(b"previous")
  common = [f"--checkpoint={ckpt_dir}", f"--output={existing}", "--overwrite", "--no-progress"]
  cases = [([bad_video, "--render", tmp_path / "r.mp4"], [bad_video, "cannot read video"]),
           ([one_frame, "--format=coco17", "--image-size=640,480"],
            [one_frame, "no track has 3 or more frames (longest: 1)"]),
           ([no_ids, "--format=coco17", "--image-size=640,480"],
            [no_ids, "frame 0 has two people", "no track id"]),
           (["--webcam", "--camera=57"], ["no camera at index 57"])]
  for args, needles in cases:
    one_line_error(run_cli("lift", *args, *common), *needles)
    assert existing.read_bytes() == b"previous", args
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["broken.mp4", "one_frame.json", "no_ids.json", "out.npz"]), args


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio starts ffmpeg
def test_a_failing_stage_leaves_no_outputs(tmp_path, ckpt_dir, capsys):
  """The render fails after the exports were made: none of them appears."""
  kp = tmp_path / "k.npz"
  kps, _ = skater_keypoints(12)
  np.savez(kp, keypoints=kps, width=1280, height=720, fps=25.0)
  video = tmp_path / "short.mp4"
  import imageio.v2 as iio
  with iio.get_writer(video, fps=25, macro_block_size=16) as w:
    for _ in range(5):
      w.append_data(np.zeros((720, 1280, 3), np.uint8))
  args = [str(kp), "--format=h36m17", f"--checkpoint={ckpt_dir}", "--no-progress",
          f"--output={tmp_path / 'o.npz'}", f"--json={tmp_path / 'o.json'}",
          f"--video={video}", f"--render={tmp_path / 'o.mp4'}"]
  assert lift_module.main(args) == 2
  assert "video has 5 frames" in capsys.readouterr().err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz", "short.mp4"]


@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_video_without_a_person(tmp_path, ckpt_dir):
  import imageio.v2 as iio
  video = tmp_path / "empty.mp4"
  with iio.get_writer(video, fps=10, macro_block_size=16) as w:
    for i in range(8):
      w.append_data(np.full((128, 160, 3), 40 + 10 * i, np.uint8))
  proc = run_cli("lift", video, f"--checkpoint={ckpt_dir}", "--no-progress",
                 "--render", tmp_path / "r.mp4")
  one_line_error(proc, video, "no person in any of the 8 frames")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_video_without_mediapipe_names_the_install_command(tmp_path, ckpt_dir, capsys,
                                                           monkeypatch):
  import imageio.v2 as iio
  video = tmp_path / "clip.mp4"
  with iio.get_writer(video, fps=10, macro_block_size=16) as w:
    for _ in range(3):
      w.append_data(np.zeros((64, 64, 3), np.uint8))
  monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if not installed
  monkeypatch.chdir(tmp_path)
  assert lift_module.main([str(video), f"--checkpoint={ckpt_dir}", "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "make install-detect" in err and "mediapipe==0.10.21" in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# --- detector -----------------------------------------------------------------------------------

def test_detector_interface_plugs_in(tmp_path):
  """Keypoints another tool wrote replay through the same `Detector` interface."""
  kp = tmp_path / "k.npz"
  kps, _ = skater_keypoints(6)
  np.savez(kp, keypoints=kps, width=1280, height=720)
  det = detect.KeypointFileDetector(kp, "h36m17")
  assert isinstance(det, detect.Detector) and det.image_size == (1280, 720)
  frames = [np.zeros((4, 4, 3), np.uint8)] * 4
  a, s = det.detect(frames)
  b, _ = det.detect(frames)
  np.testing.assert_array_equal(a, kps[:4])
  assert np.isnan(b[2:]).all() and s.shape == (4, 17)
  # The project's keypoint npz round trip (what `poseformer-jax detect` writes).
  mp = np.random.default_rng(0).uniform(0, 500, (5, 33, 2)).astype(np.float32)
  vis = np.full((5, 33), 0.9, np.float32)
  formats.save_keypoints(tmp_path / "d.npz", mp, vis, np.array([1, 1, 0, 1, 1], bool),
                         width=640, height=480, fps=30.0)
  back, size, fps = formats.load_keypoints(tmp_path / "d.npz", "mediapipe33")
  assert size == (640, 480) and fps == 30.0 and np.isnan(back[2]).all()
  np.testing.assert_array_equal(back, formats.to_h36m(mp, vis, "mediapipe33",
                                                      detected=[1, 1, 0, 1, 1]))


@pytest.mark.real_data
@needs_videos
@needs_mediapipe
def test_mediapipe_matches_the_shared_detections(tmp_path):
  det = detect.detect_video(VIDEO_DIR / "skater.mp4", max_frames=3, progress=False)
  ref = np.load(VIDEO_DIR / "skater_mediapipe33.npz")
  assert det["keypoints"].shape == (3, 33, 2) and det["detected"].all()
  assert np.abs(det["keypoints"][0] - ref["keypoints"][0]).max() < 1.0  # same model, pixels
  detect_cli = importlib.import_module("poseformer_jax.video.detect_cli")
  out = tmp_path / "k.npz"
  assert detect_cli.main([str(VIDEO_DIR / "skater.mp4"), f"--output={out}", "--max-frames=3",
                          "--no-progress"]) == 0
  with np.load(out) as f:
    np.testing.assert_allclose(f["keypoints"], det["keypoints"], atol=1e-3)
    assert str(f["layout"]) == "mediapipe33" and f["width"] == 1280 and f["fps"] == 25.0


@pytest.mark.slow
@pytest.mark.real_data
@needs_videos
@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_one_command_on_the_real_clips(tmp_path, ckpt_dir):
  """``poseformer-jax lift VIDEO --person largest --render x.mp4`` on the first 60 frames of
  each clip: one person's outputs, the detections of everybody as a records file."""
  import imageio.v2 as iio
  for name, size in CLIPS.items():
    out = tmp_path / Path(name).stem
    out.mkdir()
    proc = run_cli("lift", VIDEO_DIR / name, "--person=largest", "--render", out / "x.mp4",
                   "--contact-sheet", out / "x.png", "--max-frames=60",
                   f"--checkpoint={ckpt_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"track \d+ found in (60|5\d)/60 frames", proc.stdout), proc.stdout
    for stage in ("detect", "fill", "lift", "render"):
      assert f"\n  {stage} " in proc.stdout, proc.stdout
    with np.load(out / "x.npz") as f:
      assert f["poses_3d"].shape[1:] == (17, 3) and tuple(f["image_size"]) == size
      rows, first = len(f["poses_3d"]), int(f["first_frame"])
      assert rows + first == 60 and first <= 2
    found = tracks.read_tracks(out / f"{Path(name).stem}_mediapipe33.json", "mediapipe33")
    assert tracks.records_info(out / f"{Path(name).stem}_mediapipe33.json")[0] == size
    assert max(len(f) for f, _, _ in found.values()) == rows
    assert json.loads((out / "x.json").read_text())["frames"][-1]["frame"] == 59
    assert (out / "x.bvh").is_file() and (out / "x.png").is_file()
    reader = iio.get_reader(out / "x.mp4", format="FFMPEG")
    assert sum(1 for _ in reader) == rows
    reader.close()
