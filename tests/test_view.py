"""The viewer without a browser: reading results, the page's data, the `view` command,
``lift --html``, bad input and the notebook hook (tests/test_view_browser.py drives the
page in Chromium)."""

from __future__ import annotations

import html
import json
import importlib
import re
import subprocess
import sys

import numpy as np
import pytest

from poseformer_jax import view
from poseformer_jax.errors import DataError
from poseformer_jax.video import ffmpeg, figure
from poseformer_jax.view import command, page
from view_fixtures import arm_clip, floats, page_data, project, write_single, write_tracks

from conftest import REPO_ROOT, require


def test_to_viewer_is_a_rotation_with_y_up():
  pts = np.array([[1.0, 2.0, 3.0]])
  np.testing.assert_array_equal(view.to_viewer(pts), [[1.0, -2.0, -3.0]])
  # a proper rotation (180 degrees about x): handedness is kept, nothing is mirrored
  basis = view.to_viewer(np.eye(3))
  assert np.linalg.det(basis) == pytest.approx(1.0)


def test_single_result_round_trip(tmp_path):
  poses = arm_clip(12)
  path = write_single(tmp_path / "r.npz", poses, fps=30, first_frame=5)
  res = view.load_result(path)
  (t,) = res.tracks
  assert t.id is None and t.root_3d is None
  np.testing.assert_array_equal(t.frames, np.arange(5, 17))
  np.testing.assert_allclose(t.poses_3d, poses, atol=1e-6)
  np.testing.assert_allclose(t.keypoints_2d, project(poses), atol=1e-3)
  assert res.fps == 30 and res.image_size == (640, 480)
  data = page_data(page.build_html(res))
  assert data["firstFrame"] == 5 and data["count"] == 12 and data["fps"] == 30
  drawn = floats(data["tracks"][0]["poses"], (12, 17, 3))
  np.testing.assert_allclose(drawn, poses * [1, -1, -1], atol=1e-6)  # y up, in place
  assert data["tracks"][0]["trail"] is False
  assert data["boneColours"] == [figure.LEFT_COLOUR if c in (4, 5, 6, 11, 12, 13)
                                 else figure.RIGHT_COLOUR if c in (1, 2, 3, 14, 15, 16)
                                 else figure.CENTRE_COLOUR for _, c in figure.BONES]
  # the grid lies under the lowest joint (the ankles, 0.84 m below the pelvis)
  assert data["scene"]["ground"] == pytest.approx(-0.85, abs=1e-3)


def test_root_trajectory_is_drawn_in_camera_space(tmp_path):
  poses = arm_clip(20)
  root = np.stack([np.linspace(-1, 1, 20), np.zeros(20), np.full(20, 4.0)], -1)
  path = write_single(tmp_path / "r.npz", poses, root=root)
  (t,) = view.load_result(path).tracks
  np.testing.assert_allclose(t.root_3d, root, atol=1e-6)
  data = page_data(page.build_html(view.load_result(path)))
  drawn = floats(data["tracks"][0]["poses"], (20, 17, 3))
  np.testing.assert_allclose(drawn, (poses + root[:, None]) * [1, -1, -1], atol=1e-5)
  assert data["tracks"][0]["trail"] is True
  assert data["scene"]["centre"][2] == pytest.approx(-4.0, abs=0.05)
  # only poses_3d_camera (no root_3d): the root is its pelvis
  with np.load(path) as z:
    arrays = {k: z[k] for k in z.files if k != "root_3d"}
  np.savez(tmp_path / "cam_only.npz", **arrays)
  (t2,) = view.load_result(tmp_path / "cam_only.npz").tracks
  np.testing.assert_allclose(t2.root_3d, root, atol=1e-5)


def test_tracks_side_by_side_or_in_camera_space(tmp_path):
  a, b = arm_clip(30), arm_clip(25, 160, 20)
  path = write_tracks(tmp_path / "t.npz", {"3": (0, a), "7": (10, b)})
  res = view.load_result(path)
  assert [t.id for t in res.tracks] == ["3", "7"]
  data = page_data(page.build_html(res))
  assert data["firstFrame"] == 0 and data["count"] == 35
  assert [(t["id"], t["start"], t["count"]) for t in data["tracks"]] == [("3", 0, 30), ("7", 10, 25)]
  drawn7 = floats(data["tracks"][1]["poses"], (25, 17, 3))
  np.testing.assert_allclose(drawn7, b * [1, -1, -1] + [page.TRACK_SPACING / 2, 0, 0], atol=1e-5)
  roots = {"3": np.tile([0.5, 0, 5.0], (30, 1)), "7": np.tile([-0.5, 0, 3.0], (25, 1))}
  path = write_tracks(tmp_path / "t2.npz", {"3": (0, a), "7": (10, b)}, roots=roots)
  data = page_data(page.build_html(view.load_result(path)))
  drawn7 = floats(data["tracks"][1]["poses"], (25, 17, 3))
  np.testing.assert_allclose(drawn7, (b + roots["7"][:, None]) * [1, -1, -1], atol=1e-5)


def _bad_inputs(tmp_path):
  good = write_single(tmp_path / "good.npz", arm_clip(10))
  blob = good.read_bytes()
  (tmp_path / "truncated.npz").write_bytes(blob[:len(blob) // 2])
  (tmp_path / "text.npz").write_text("not a zip")
  empty = write_tracks(tmp_path / "empty_track.npz", {"1": (0, arm_clip(5))})
  with np.load(empty) as z:
    arrays = dict(z)
  arrays["track_1_poses_3d"] = np.zeros((0, 17, 3), np.float32)
  np.savez(empty, **arrays)
  nan = arm_clip(4)
  nan[2, 3] = np.nan
  np.savez(tmp_path / "nan.npz", poses_3d=nan)
  np.savez(tmp_path / "shape.npz", poses_3d=np.zeros((4, 16, 3)))
  return {"truncated.npz": "not a readable npz result",
          "text.npz": "not a readable npz result",
          REPO_ROOT / "examples" / "skater_mediapipe33.npz": "not a poseformer-jax lift result",
          "empty_track.npz": "track 1: 'track_1_poses_3d' has no frames",
          "nan.npz": "non-finite", "shape.npz": "has shape (4, 16, 3)",
          "missing.npz": "no such result file"}


def test_bad_results_are_one_line_errors(tmp_path):
  for name, message in _bad_inputs(tmp_path).items():
    with pytest.raises(DataError, match=re.escape(message)) as e:
      view.load_result(tmp_path / name)
    assert "\n" not in str(e.value)


def test_view_command_writes_the_page(tmp_path, capsys):
  res = write_single(tmp_path / "r.npz", arm_clip(8))
  assert command.main([str(res)]) == 0
  out = tmp_path / "r.html"  # default: the result's name
  assert capsys.readouterr().out.strip() == f"wrote {out}"
  data = page_data(out.read_text())
  np.testing.assert_allclose(floats(data["tracks"][0]["poses"], (8, 17, 3)),
                             arm_clip(8) * [1, -1, -1], atol=1e-6)
  assert command.main([str(res), f"--html={out}"]) == 1  # no silent overwrite
  assert "already exists" in capsys.readouterr().err
  assert command.main([str(res), f"--html={out}", "--overwrite", "--title=<Jump>"]) == 0
  assert "<title>&lt;Jump&gt;</title>" in out.read_text()


def test_view_command_bad_input_writes_nothing(tmp_path, capsys):
  cases = _bad_inputs(tmp_path)
  for name, message in cases.items():
    out = tmp_path / "out.html"
    assert command.main([str(tmp_path / name), f"--html={out}"]) == 1, name
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.html")]
  assert command.main([]) == 2
  assert "one RESULT.npz expected" in capsys.readouterr().err
  assert command.main([str(tmp_path / "good.npz"), "--html=x.png"]) == 1
  assert "must end with .html" in capsys.readouterr().err


def test_view_is_a_subcommand(tmp_path):
  res = write_single(tmp_path / "r.npz", arm_clip(4))
  proc = subprocess.run([sys.executable, "-m", "poseformer_jax", "view", str(res),
                         f"--html={tmp_path / 'v.html'}"], capture_output=True, text=True,
                        cwd=REPO_ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert (tmp_path / "v.html").stat().st_size > 100_000


def test_page_is_self_contained(tmp_path):
  text = page.build_html(view.load_result(write_single(tmp_path / "r.npz", arm_clip(4))))
  # nothing is loaded from elsewhere: no src/href attributes, no module imports
  assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
  assert 'type="module"' not in text and "import(" not in text
  assert text.count("<script") == 3 and "three.js 0.187.0" in text
  # a title with markup is escaped, data with '</script>' cannot close its block
  res = view.from_poses(arm_clip(3), name="a</script><b>")
  text = page.build_html(res, title="</script>")
  assert "</script><b>" not in text and page_data(text)["count"] == 3


def test_show_displays_an_iframe_in_ipython(monkeypatch):
  require("IPython")
  import IPython
  import IPython.display
  with pytest.raises(DataError, match="Jupyter"):
    view.show(arm_clip(3))  # no IPython shell here
  shown = []
  monkeypatch.setattr(IPython, "get_ipython", lambda: object())
  monkeypatch.setattr(IPython.display, "display", shown.append)
  view.show(arm_clip(5), title="clip")
  (viewer,) = shown
  snippet = viewer._repr_html_()
  srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', snippet).group(1))
  assert srcdoc == viewer.page and page_data(srcdoc)["count"] == 5
  assert 'sandbox="allow-scripts"' in snippet


def test_lift_writes_the_viewer(tmp_path, capsys):
  lift = importlib.import_module("poseformer_jax.lift_command.main")
  out, page_path = tmp_path / "s.npz", tmp_path / "s.html"
  argv = ["--keypoints", str(REPO_ROOT / "examples" / "skater_mediapipe33.npz"),
          "--max-frames=24", f"--output={out}", f"--html={page_path}", "--no-progress"]
  assert lift.main(argv) == 0
  data = page_data(page_path.read_text())
  with np.load(out) as z:  # the default model places the person: camera space on the page
    np.testing.assert_allclose(floats(data["tracks"][0]["poses"], (24, 17, 3)),
                               z["poses_3d_camera"] * [1, -1, -1], atol=1e-6)
    assert np.ptp(z["root_3d"][:, 2]) > 0.0
  assert lift.main(argv + ["--no-trajectory", "--overwrite"]) == 0
  data = page_data(page_path.read_text())
  with np.load(out) as z:  # without a trajectory: root-relative, standing in place
    assert "root_3d" not in z
    np.testing.assert_allclose(floats(data["tracks"][0]["poses"], (24, 17, 3)),
                               z["poses_3d"] * [1, -1, -1], atol=1e-6)
  assert lift.main(argv[:-2] + [f"--html={tmp_path / 's.htm'}", "--overwrite"]) == 2
  assert "must end with .html" in capsys.readouterr().err


def test_video_thumbnails_within_budget(tmp_path):
  import base64
  import io

  import imageio.v2 as iio
  from PIL import Image

  from poseformer_jax.view.thumbnails import thumbnails
  video = tmp_path / "v.mp4"
  frames = [np.full((96, 128, 3), 8 * i, np.uint8) for i in range(24)]
  with ffmpeg.quiet():
    iio.mimwrite(video, frames, fps=24, macro_block_size=16)
  got = thumbnails(video, 4, 16, (128, 96), width=64)
  assert got["stride"] == 1 and len(got["images"]) == 16
  grey = [np.asarray(Image.open(io.BytesIO(base64.b64decode(im)))).mean() for im in got["images"]]
  np.testing.assert_allclose(grey, 8 * np.arange(4, 20), atol=3)  # frames 4..19, in order
  small = thumbnails(video, 0, 24, (128, 96), width=64, budget=3000)
  assert small["stride"] > 1 and len(small["images"]) == -(-24 // small["stride"])
  assert sum(map(len, small["images"])) <= 3000 * 1.3
  with pytest.raises(DataError, match="video ends before frame 29"):
    thumbnails(video, 10, 20, (128, 96))
  with pytest.raises(DataError, match="image size is 640x480"):
    thumbnails(video, 0, 4, (640, 480))


def test_lift_of_several_people_writes_one_viewer(tmp_path):
  lift = importlib.import_module("poseformer_jax.lift_command.main")
  records = []
  for track, first, poses in (("3", 0, arm_clip(20)), ("7", 6, arm_clip(20, 160, 20))):
    kps = project(poses)
    records += [{"frame": first + i, "track_id": track, "keypoints": k.round(2).tolist()}
                for i, k in enumerate(kps)]
  people = tmp_path / "people.json"
  people.write_text(json.dumps(records))
  out, page_path = tmp_path / "p.npz", tmp_path / "p.html"
  assert lift.main([str(people), "--format=h36m17", "--image-size=640,480", "--fps=30",
                    f"--output={out}", f"--html={page_path}", "--no-progress",
                    "--no-trajectory"]) == 0  # root-relative: the tracks side by side
  data = page_data(page_path.read_text())
  assert [(t["id"], t["start"], t["count"]) for t in data["tracks"]] == [("3", 0, 20), ("7", 6, 20)]
  with np.load(out) as z:
    np.testing.assert_allclose(floats(data["tracks"][1]["poses"], (20, 17, 3)),
                               z["track_7_poses_3d"] * [1, -1, -1]
                               + [page.TRACK_SPACING / 2, 0, 0], atol=1e-5)
