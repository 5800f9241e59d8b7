"""The viewer page in a real browser: Debian's Chromium (headless, WebGL by SwiftShader)
driven by Playwright's Python API, every page loaded from ``file://`` with every other
request refused.

Each test projects the poses it wrote with the page's own camera matrices and reads the
screenshot's pixels there: left limbs blue, right limbs red (the mp4's colours), the
background elsewhere. Without Playwright or Chromium the tests skip with the reason
(under ``CI=true`` they fail: `.ci/run` installs Chromium). ``VIEWER_SCREENSHOT=PATH``
makes `test_demo_page_plays_offline` save its screenshot there (the README's image).
"""

from __future__ import annotations

import importlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from poseformer_jax import view
from view_fixtures import arm_clip, write_single, write_tracks

from conftest import REPO_ROOT, require, require_executable

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-extensions"]
VIEWPORT = {"width": 1000, "height": 600}
LEFT_LIMBS = ((11, 12), (12, 13), (4, 5), (5, 6))  # (parent, child) joints
RIGHT_LIMBS = ((14, 15), (15, 16), (1, 2), (2, 3))


@pytest.fixture(scope="module")
def chromium():
  """(Playwright's chromium launcher, the system's chromium executable); one per module.
  Skips without them (fails under CI=true, where .ci/run provides the browser)."""
  sync_api = require("playwright.sync_api", "pip install -e '.[test]'")
  exe = require_executable(*filter(None, [os.environ.get("CHROMIUM")]), "chromium",
                           "chromium-browser", hint="Debian: apt-get install chromium")
  with sync_api.sync_playwright() as p:
    yield p.chromium, exe


@pytest.fixture(scope="module")
def browser(chromium):
  launcher, exe = chromium
  b = launcher.launch(executable_path=exe, args=CHROMIUM_ARGS)
  yield b
  b.close()


class Page:
  """A viewer page opened offline; records console errors and every request."""

  def __init__(self, browser, path: Path, viewport=VIEWPORT, ready: bool = True):
    self.context = browser.new_context(viewport=viewport, device_scale_factor=1)
    self.requests, self.errors = [], []

    def route(r):
      self.requests.append(r.request.url)
      return r.continue_() if r.request.url.startswith("file:") else r.abort()

    self.context.route("**/*", route)
    self.page = self.context.new_page()
    self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
    self.page.on("pageerror", lambda e: self.errors.append(str(e)))
    self.url = Path(path).resolve().as_uri()
    self.page.goto(self.url)
    if ready:
      self.page.wait_for_function("window.poseViewer && window.poseViewer.ready", timeout=30_000)

  def js(self, expr: str):
    return self.page.evaluate(expr)

  def seek(self, frame: int):
    self.page.locator("#slider").fill(str(frame))
    self.settle()

  def settle(self):
    """Waits two animation frames (the page renders on the next one)."""
    self.js("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

  def project(self, points) -> np.ndarray:
    """(N, 3) viewer-space points -> (N, 2) page pixels, with the page's camera."""
    cam = self.js("poseViewer.camera()")
    view_m = np.array(cam["view"]).reshape(4, 4).T  # three.js stores column-major
    proj = np.array(cam["projection"]).reshape(4, 4).T
    p = np.c_[np.asarray(points, np.float64), np.ones(len(points))] @ (proj @ view_m).T
    ndc = p[:, :2] / p[:, 3:]
    left, top, w, h = cam["rect"]
    return np.c_[left + (ndc[:, 0] + 1) / 2 * w, top + (1 - ndc[:, 1]) / 2 * h]

  def shot(self, path=None) -> np.ndarray:
    from PIL import Image
    png = self.page.screenshot(path=path)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

  def close(self):
    self.context.close()


@pytest.fixture
def open_page(browser):
  pages = []

  def opener(path, **kw):
    pages.append(Page(browser, path, **kw))
    return pages[-1]

  yield opener
  for p in pages:
    p.close()


def _patch(img, xy, r=2) -> np.ndarray:
  x, y = (int(round(v)) for v in xy)
  return img[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3)


def _is(kind: str, img, xy, r: int = 2) -> bool:
  """Most pixels around `xy` are of `kind`: 'blue', 'red', or 'background' (white-ish
  or grid grey: no skeleton colour)."""
  px = _patch(img, xy, r)
  r, g, b = px[:, 0], px[:, 1], px[:, 2]
  if kind == "blue":
    return np.mean((b > 120) & (b - r > 60)) > 0.5
  if kind == "red":
    return np.mean((r > 120) & (r - b > 60)) > 0.5
  return np.all((np.abs(r - b) < 40) & (r > 150))


def _limb_midpoints(pose, limbs) -> np.ndarray:
  return np.array([(pose[a] + pose[b]) / 2 for a, b in limbs])


def _assert_pose_drawn(pg: Page, pose_viewer: np.ndarray):
  """Left limbs blue and right limbs red where the camera projects them."""
  img = pg.shot()
  for kind, limbs in (("blue", LEFT_LIMBS), ("red", RIGHT_LIMBS)):
    for (a, b), xy in zip(limbs, pg.project(_limb_midpoints(pose_viewer, limbs))):
      assert _is(kind, img, xy), f"bone {a}-{b}: no {kind} at {xy.round()}: {_patch(img, xy)[:5]}"
  return img


def _to_viewer(poses):
  return np.asarray(poses) * [1.0, -1.0, -1.0]


@pytest.fixture(scope="module")
def arm_page(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("view")
  poses = arm_clip(60)
  view.write_html(tmp / "arm.html", write_single(tmp / "arm.npz", poses, fps=30))
  return tmp / "arm.html", poses


def test_opens_offline_without_errors_and_plays(open_page, arm_page):
  pg = open_page(arm_page[0])
  assert pg.js("poseViewer.webgl()") and pg.js("poseViewer.playing()")
  first, clock = pg.js("poseViewer.frame()"), pg.page.locator("#clock").inner_text()
  pg.page.wait_for_function(f"poseViewer.frame() !== {first}", timeout=10_000)
  # The clock is written when the frame is drawn, one animation frame after the frame advances.
  pg.page.wait_for_function("c => document.getElementById('clock').innerText !== c", arg=clock,
                            timeout=10_000)
  assert pg.page.locator("#clock").inner_text() != clock
  assert pg.page.locator("#play").inner_text() == "pause"
  pg.page.locator("#play").click()
  assert not pg.js("poseViewer.playing()")
  assert pg.requests == [pg.url]  # the page itself, nothing else
  assert pg.errors == []


def test_skeleton_drawn_where_the_camera_projects_it(open_page, arm_page):
  path, poses = arm_page
  pg = open_page(path)
  pg.js("poseViewer.pause()")
  pg.seek(0)
  img = _assert_pose_drawn(pg, _to_viewer(poses[0]))
  corner = pg.project(np.array([[2.5, 1.2, 0.0]]))[0]  # beside the person: background
  assert _is("background", img, corner)
  assert pg.errors == []


def test_slider_moves_to_a_frame_and_its_pose_is_drawn(open_page, arm_page):
  path, poses = arm_page
  pg = open_page(path)
  pg.seek(50)
  assert pg.js("poseViewer.frame()") == 50 and not pg.js("poseViewer.playing()")
  assert pg.page.locator("#clock").inner_text().startswith("frame 50 \u00b7 1.67 s")
  img = _assert_pose_drawn(pg, _to_viewer(poses[50]))
  # where frame 0 had the left forearm, frame 50 has none
  old = pg.project(_limb_midpoints(_to_viewer(poses[0]), [(12, 13)]))[0]
  assert _is("background", img, old)
  pg.page.keyboard.press("ArrowLeft")
  pg.settle()
  assert pg.js("poseViewer.frame()") == 49
  assert pg.errors == []


def test_dragging_orbits_and_reset_returns(open_page, arm_page):
  path, poses = arm_page
  pg = open_page(path)
  pg.seek(30)
  before = pg.js("poseViewer.camera()")
  x, y = pg.project(np.array(before["target"])[None])[0]
  pg.page.mouse.move(x, y)
  pg.page.mouse.down()
  pg.page.mouse.move(x + 70, y + 10, steps=7)
  pg.page.mouse.up()
  pg.settle()
  after = pg.js("poseViewer.camera()")
  target = np.array(before["target"])
  azimuth = [np.degrees(np.arctan2(*(np.array(c["position"]) - target)[[0, 2]]))
             for c in (before, after)]
  assert abs(azimuth[1] - azimuth[0]) > 20  # turned about the vertical
  np.testing.assert_allclose(after["target"], before["target"], atol=1e-6)
  _assert_pose_drawn(pg, _to_viewer(poses[30]))  # still drawn where the new view projects it
  pg.page.locator("#reset").click()
  pg.settle()
  np.testing.assert_allclose(pg.js("poseViewer.camera()")["position"], before["position"],
                             atol=1e-6)
  assert pg.errors == []


def test_root_trajectory_moves_the_body_and_draws_its_trail(open_page, tmp_path):
  t = 40
  poses = arm_clip(t)
  root = np.stack([np.linspace(-1.2, 1.2, t), np.zeros(t), np.full(t, 4.0)], -1)
  path = view.write_html(tmp_path / "walk.html", write_single(tmp_path / "w.npz", poses,
                                                               root=root))
  pg = open_page(path)
  cam = _to_viewer(poses + root[:, None])
  ground = pg.js("JSON.parse(document.getElementById('pose-data').textContent).scene.ground")
  trail_mid = np.r_[cam[t // 2, 0, 0], ground, cam[t // 2, 0, 2]][None]

  def purple(img, xy):
    px = _patch(img, xy, 3)
    return np.any((px[:, 2] - px[:, 1] > 60) & (px[:, 0] - px[:, 1] > 15))

  pg.seek(0)
  img = _assert_pose_drawn(pg, cam[0])
  assert not purple(img, pg.project(trail_mid)[0])  # not walked yet
  pg.seek(t - 1)
  img = _assert_pose_drawn(pg, cam[t - 1])
  assert _is("background", img, pg.project(_limb_midpoints(cam[0], [(15, 16)]))[0])
  assert purple(img, pg.project(trail_mid)[0])  # the trail behind it
  assert pg.errors == []


def test_several_tracks_with_their_ids(open_page, tmp_path):
  a, b = arm_clip(40), arm_clip(40, 160, 20)
  path = view.write_html(tmp_path / "two.html",
                         write_tracks(tmp_path / "two.npz", {"3": (0, a), "7": (20, b)}))
  pg = open_page(path)
  shift = np.array([view.page.TRACK_SPACING / 2, 0, 0])
  labels = pg.page.locator("#labels div")
  assert labels.all_inner_texts() == ["id 3", "id 7"]
  pg.seek(10)  # only track 3 has started
  img = _assert_pose_drawn(pg, _to_viewer(a[10]) - shift)
  assert not labels.nth(1).is_visible() and labels.nth(0).is_visible()
  for xy in pg.project(_limb_midpoints(_to_viewer(b[0]) + shift, LEFT_LIMBS + RIGHT_LIMBS)):
    assert _is("background", img, xy)
  pg.seek(30)
  _assert_pose_drawn(pg, _to_viewer(a[30]) - shift)
  _assert_pose_drawn(pg, _to_viewer(b[10]) + shift)
  box = labels.nth(1).bounding_box()
  head = pg.project((_to_viewer(b[10]) + shift)[10:11] + [0, 0.15, 0])[0]
  assert abs(box["x"] + box["width"] / 2 - head[0]) < 3 and abs(box["y"] + box["height"] - head[1]) < 3
  assert pg.errors == []


def test_notebook_iframe_plays(open_page, tmp_path):
  viewer = view.Viewer(view.to_html(arm_clip(30)), height=400)
  outer = tmp_path / "notebook.html"  # a notebook's output cell holds the same snippet
  outer.write_text(f"<html><body><p>cell output</p>{viewer._repr_html_()}</body></html>")
  pg = open_page(outer, ready=False)
  frame = pg.page.frames[1]
  frame.wait_for_function("window.poseViewer && window.poseViewer.ready", timeout=30_000)
  first = frame.evaluate("poseViewer.frame()")
  frame.wait_for_function(f"poseViewer.frame() !== {first}", timeout=10_000)
  assert frame.evaluate("poseViewer.webgl()")
  assert pg.requests == [pg.url] and pg.errors == []


def test_video_frame_under_the_2d_keypoints(open_page, tmp_path):
  import imageio.v2 as iio
  from poseformer_jax.video.ffmpeg import quiet
  video = tmp_path / "green.mp4"
  with quiet():
    iio.mimwrite(video, [np.tile(np.array([40, 200, 60], np.uint8), (480, 640, 1))] * 12,
                 fps=30, macro_block_size=16)
  res = write_single(tmp_path / "g.npz", arm_clip(12), size=(640, 480))
  pg = open_page(view.write_html(tmp_path / "g.html", res, video=video))
  pg.js("poseViewer.pause()")
  pg.seek(5)
  pg.page.wait_for_timeout(200)  # the JPEG decodes asynchronously
  box = pg.page.locator("#view2d").bounding_box()
  img = pg.shot()
  corner = img[int(box["y"]) + 3:int(box["y"]) + 13, int(box["x"]) + 3:int(box["x"]) + 13]
  assert np.all(corner[..., 1] - corner[..., 0] > 100), corner[0, 0]  # the video's green
  assert pg.errors == []


def test_demo_page_plays_offline(open_page, tmp_path):
  """`make demo`'s page: the bundled skater keypoints lifted by the shipped model."""
  lift = importlib.import_module("poseformer_jax.lift_command.main")
  out, html = tmp_path / "skater_3d.npz", tmp_path / "skater_3d.html"
  assert lift.main(["--keypoints", str(REPO_ROOT / "examples" / "skater_mediapipe33.npz"),
                    f"--output={out}", f"--html={html}", "--no-progress"]) == 0
  pg = open_page(html, viewport={"width": 1100, "height": 560})
  first = pg.js("poseViewer.frame()")
  pg.page.wait_for_function(f"poseViewer.frame() !== {first}", timeout=10_000)
  pg.seek(60)
  with np.load(out) as z:  # the shipped model places the person: camera space
    pose = _to_viewer(z["poses_3d_camera"][60] if "poses_3d_camera" in z else z["poses_3d"][60])
  img = pg.shot(os.environ.get("VIEWER_SCREENSHOT") or None)
  hits = [_is(kind, img, xy) for kind, limbs in (("blue", LEFT_LIMBS), ("red", RIGHT_LIMBS))
          for xy in pg.project(_limb_midpoints(pose, limbs))]
  assert sum(hits) >= 7, hits  # a real pose: allow one limb hidden behind another
  assert pg.requests == [pg.url] and pg.errors == []


def test_without_webgl_the_2d_view_still_plays(chromium, tmp_path):
  """A browser without WebGL: a message in the 3D panel, the 2D view and controls work."""
  npz = write_single(tmp_path / "a.npz", arm_clip(30))
  with np.load(npz) as z:
    arrays = dict(z)
  arrays["keypoints_2d"][29, 3] = np.nan  # a joint never seen: its bone is left out
  np.savez(npz, **arrays)
  path = view.write_html(tmp_path / "a.html", npz)
  launcher, exe = chromium
  browser = launcher.launch(executable_path=exe, args=CHROMIUM_ARGS + ["--disable-webgl"])
  try:
    pg = Page(browser, path)
    assert not pg.js("poseViewer.webgl()")
    assert "needs WebGL" in pg.page.locator("#message").inner_text()
    first = pg.js("poseViewer.frame()")
    pg.page.wait_for_function(f"poseViewer.frame() !== {first}", timeout=10_000)
    pg.seek(29)
    box = pg.page.locator("#view2d").bounding_box()
    img = pg.shot()
    with np.load(path.with_suffix(".npz")) as z:
      kps = z["keypoints_2d"][29]
    to_page = lambda p: (box["x"] + p[0] * box["width"] / 640,  # noqa: E731
                         box["y"] + p[1] * box["height"] / 480)
    assert _is("blue", img, to_page(kps[13]), r=1)  # the left wrist's dot in the 2D panel
    assert _is("blue", img, to_page((kps[12] + kps[13]) / 2), r=1)  # and its forearm
    assert _is("red", img, to_page((kps[15] + kps[16]) / 2), r=1)
    assert _is("red", img, to_page(kps[2]), r=1)  # the right knee is drawn ...
    below = to_page(kps[2] + [0, 40])
    assert not _is("red", img, below, r=1)  # ... the shin to the unseen ankle is not
    assert not [e for e in pg.errors if "WebGL" not in e]
  finally:
    browser.close()
