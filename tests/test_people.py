"""Several people in a raw video: found, followed (track ids), lifted, rendered and exported.

The geometry of `poseformer_jax.video.tracking` is checked on hand-made boxes. The
real test clip is made here, in pytest's temp folder, from the two shared clips
(../shared/data/video, skipped when absent): the NTU person on the left, the
skater on the right, each scaled to 640x360 and put side by side (1280x360, 32
frames). "That person's single clip" is the same canvas with the other half
black, so a person has the same pixels, image size and normalisation in both and
any difference comes from the detector alone.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from conftest import REPO_ROOT, SHARED_DATA, require
from poseformer_jax.video import people, tracking  # people imports detect: before MediaPipe

VIDEO_DIR = SHARED_DATA / "video"
FRAMES, HALF, HEIGHT = 32, 640, 360
needs_videos = pytest.mark.skipif(not VIDEO_DIR.is_dir(), reason=f"no clips at {VIDEO_DIR}")


@pytest.fixture
def mediapipe():
  """MediaPipe, or a skip (a failure under CI=true) with the install command."""
  return require("mediapipe", "make install-detect")


needs_mediapipe = pytest.mark.usefixtures("mediapipe")


# --- geometry -----------------------------------------------------------------------------------

def test_boxes_and_overlaps():
  k = np.array([[10, 20], [50, 80], [np.nan, 5], [-30, 40]])
  np.testing.assert_array_equal(tracking.box_of(k, (100, 100)), [0, 20, 50, 80])
  assert np.isnan(tracking.box_of(np.full((3, 2), np.nan), (100, 100))).all()
  a, b = np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])
  assert tracking.iou(a, b) == pytest.approx(50 / 150)
  assert tracking.covered(np.array([2, 2, 4, 4]), a) == 1.0 and tracking.covered(a, b) == 0.5
  assert tracking.iou(a, np.full(4, np.nan)) == 0.0


def test_windows_follow_a_person():
  box = np.array([100, 50, 140, 150])  # 40 x 100 pixels
  x0, y0, side = tracking.window_around(box)
  assert side == 200 and (x0 + side / 2, y0 + side / 2) == (120, 100)
  assert not tracking.needs_new_window(box, (x0, y0, side))
  assert tracking.needs_new_window(box + [60, 0, 60, 0], (x0, y0, side))  # walked to the edge
  assert tracking.needs_new_window([110, 90, 130, 110], (x0, y0, side))  # walked away: small
  assert tracking.window_around([5, 5, 10, 10])[2] == 96  # never below the minimum side


@pytest.mark.parametrize("size", [(1280, 360), (1920, 1080), (360, 640), (300, 300)])
def test_scan_tiles_cover_the_frame(size):
  tiles = tracking.scan_tiles(size)
  assert tiles[0] == (0, 0, *size)
  seen = np.zeros(size[::-1], bool)
  for x, y, w, h in tiles[1:]:
    assert w == h >= 256 and 0 <= x and x + w <= size[0] and 0 <= y and y + h <= size[1]
    seen[y:y + h, x:x + w] = True
  assert len(tiles) == 1 or seen.all()


def test_new_people_and_duplicates():
  known = [np.array([0, 0, 100, 200])]
  candidates = [np.array([10, 100, 90, 190]),   # the known person's legs: nobody new
                np.array([300, 0, 400, 200]),   # a new person
                np.array([310, 10, 390, 100]),  # part of that new person
                np.array([600, 0, 650, 100])]   # another new person
  assert tracking.new_people(candidates, known) == [1, 3]
  boxes = {"0": np.array([0, 0, 10, 10]), "1": np.array([1, 0, 11, 10]),
           "2": np.array([50, 0, 60, 10])}
  assert tracking.duplicates(boxes, {"0": 5, "1": 9, "2": 1}) == {"0"}  # the younger ends


# --- the side-by-side clip ----------------------------------------------------------------------

def _halves():
  import imageio.v2 as iio
  from PIL import Image

  def frames(name):
    reader = iio.get_reader(VIDEO_DIR / name)
    out = [np.asarray(Image.fromarray(f).resize((HALF, HEIGHT), Image.Resampling.BILINEAR))
           for _, f in zip(range(FRAMES), reader)]
    reader.close()
    return out
  return frames("ntu_S001C001P001R001A001.avi"), frames("skater.mp4")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """pair.mp4 (both people), left.mp4 / right.mp4 (one person, the other half black)."""
  import imageio.v2 as iio
  folder = tmp_path_factory.mktemp("people")
  left, right = _halves()
  black = np.zeros_like(left[0])
  for name, pairs in (("pair", zip(left, right)), ("left", ((f, black) for f in left)),
                      ("right", ((black, f) for f in right))):
    with iio.get_writer(folder / f"{name}.mp4", fps=25, macro_block_size=8, quality=9) as w:
      for a, b in pairs:
        w.append_data(np.concatenate([a, b], 1))
  return folder


def _found(keypoints) -> np.ndarray:
  return np.isfinite(keypoints).all(-1).any(-1)


@pytest.mark.real_data
@needs_videos
@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_two_people_found_and_followed(clips):
  det = people.detect_people(clips / "pair.mp4", progress=False)
  assert det["frames"] == FRAMES and (det["width"], det["height"]) == (2 * HALF, HEIGHT)
  # Someone in the skater's audience may show up for a moment; the two performers are the
  # tracks seen in 8 frames or more.
  main = {tid: t for tid, t in det["tracks"].items() if _found(t[1]).sum() >= 8}
  assert len(main) == 2, {tid: _found(t[1]).sum() for tid, t in det["tracks"].items()}
  sides = {}
  for tid, (frames, kps, scores) in main.items():
    seen = _found(kps)
    assert seen.mean() >= 0.85 and kps.shape == (len(frames), 33, 2)
    x = np.nanmean(kps[seen][..., 0], -1)  # per frame: the mean column of the landmarks
    side = "left" if x[0] < HALF else "right"
    # No identity switch: the track stays on its side in every frame it was found.
    assert ((x < HALF) if side == "left" else (x > HALF)).all(), (tid, x.min(), x.max())
    sides[side] = tid
  assert set(sides) == {"left", "right"}


@pytest.mark.slow
@pytest.mark.real_data
@needs_videos
@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_every_person_lifted_rendered_exported_and_as_alone(clips, tmp_path, capsys):
  """``poseformer-jax lift pair.mp4`` with the shipped model: both people, keyed by track, in
  one render; each track's 3D poses agree with lifting that person's single clip.

  Tolerance: the detector does not see a person quite the same beside another (its crop
  windows move at other frames and hold the neighbour's pixels), so the 2D keypoints differ
  a little, and a pose now and then (the skater's spin) differently. For scale: the
  shipped model lifts the shared full-resolution detections of the NTU clip and this
  test's (the clip at 640x360) 7 mm apart on average, 12.6 mm at most (first 40 frames).
  So: the median frame within 20 mm (MPJPE), nine frames in ten within 40 mm.
  """
  cli = importlib.import_module("poseformer_jax.lift_command.main")
  out = tmp_path / "pair_3d.npz"
  assert cli.main([str(clips / "pair.mp4"), "--min-track-frames=8", "--no-progress",
                   f"--output={out}", f"--render={tmp_path / 'pair.mp4'}",
                   f"--contact-sheet={tmp_path / 'pair.png'}"]) == 0
  text = capsys.readouterr().out
  assert "2 tracks" in text or "tracks; skipped" in text
  with np.load(out) as f:
    ids = f["track_ids"].tolist()
    assert len(ids) == 2 and f["image_size"].tolist() == [2 * HALF, HEIGHT]
    tracks = {i: {k: f[f"track_{i}_{k}"] for k in ("poses_3d", "keypoints_2d", "filled",
                                                   "low_confidence", "frames")} for i in ids}
  side = {("left" if np.median(t["keypoints_2d"][:, 0, 0]) < HALF else "right"): i
          for i, t in tracks.items()}
  assert set(side) == {"left", "right"}
  for i, t in tracks.items():
    assert t["poses_3d"].shape == (len(t["frames"]), 17, 3) and np.isfinite(t["poses_3d"]).all()
  doc = json.loads((tmp_path / "pair_3d.json").read_text())
  assert [e["track_id"] for e in doc["tracks"]] == ids
  row = doc["tracks"][0]["frames"][0]
  assert {"frame", "pose_3d", "keypoints_2d", "filled_joints", "low_confidence_joints"} <= set(row)
  assert all((tmp_path / f"pair_3d_track{i}.bvh").is_file() for i in ids)
  _check_render(tmp_path / "pair.mp4", FRAMES)
  # The detections, saved as a records file, lift again to the same poses.
  assert cli.main([str(tmp_path / "pair_mediapipe33.json"), "--format=mediapipe33",
                   "--min-track-frames=8", "--no-progress",
                   f"--output={tmp_path / 'again.npz'}"]) == 0
  with np.load(tmp_path / "again.npz") as f:
    for i in ids:
      np.testing.assert_allclose(f[f"track_{i}_poses_3d"], tracks[i]["poses_3d"], atol=1e-4)
  for name in ("left", "right"):
    alone = tmp_path / f"{name}_3d.npz"
    assert cli.main([str(clips / f"{name}.mp4"), "--person=largest", "--no-progress",
                     f"--output={alone}", f"--save-keypoints={tmp_path / f'{name}.json'}"]) == 0
    with np.load(alone) as f:
      mpjpe = _mpjpe(tracks[side[name]], f["poses_3d"], f["first_frame"])
    assert np.median(mpjpe) <= 20 and np.mean(mpjpe <= 40) >= 0.9, (name, mpjpe.round(1))


def _mpjpe(track: dict, poses: np.ndarray, first: int) -> np.ndarray:
  """Per common frame, mean joint distance (mm) between a track and a one-person result."""
  frames = np.intersect1d(track["frames"], first + np.arange(len(poses)))
  assert len(frames) >= FRAMES - 4
  a = track["poses_3d"][np.searchsorted(track["frames"], frames)]
  b = poses[frames - first]
  return np.linalg.norm(a - b, axis=-1).mean(-1) * 1000


def _check_render(path, frames: int):
  import imageio.v2 as iio
  reader = iio.get_reader(path, format="FFMPEG")
  n = sum(1 for _ in reader)
  reader.close()
  assert n == frames


@pytest.mark.real_data
@needs_videos
@needs_mediapipe
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_bad_person_choices_are_one_line(clips, tmp_path, capsys):
  cli = importlib.import_module("poseformer_jax.lift_command.main")
  out = tmp_path / "o.npz"
  ckpt = tmp_path / "ckpt"
  from test_lift_wild import write_checkpoint
  write_checkpoint(ckpt)
  assert cli.main([str(clips / "left.mp4"), "--person=7", f"--checkpoint={ckpt}",
                   "--no-progress", f"--output={out}", "--max-frames=4"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "no track '7'; tracks: 0" in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@needs_mediapipe
def test_mediapipe_imported_first_is_a_clear_error():
  """MediaPipe's bindings need the protobuf shim before their first import; a process that
  imported MediaPipe earlier gets one line saying so, not a traceback from its bindings."""
  import subprocess
  import sys
  code = ("import mediapipe\nfrom poseformer_jax.video import people\n"
          "try:\n  people.PeopleDetector((64, 64), 25)\n"
          "except Exception as e:\n  print(type(e).__name__, e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=REPO_ROOT).stdout
  assert out.startswith("DataError") and "import poseformer_jax.video.detect first" in out, out
