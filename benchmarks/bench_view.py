"""The viewer page of a one-minute clip: file size and time to first frame in Chromium.

    python benchmarks/bench_view.py                 # 1,800 frames at 30 fps, 5 loads per case
    python benchmarks/bench_view.py --quick         # 2 loads per case, no video case

The clip: the bundled skater keypoints (examples/skater_mediapipe33.npz, 185 frames)
played forwards and backwards to 1,800 frames, taken as 30 fps (one minute), lifted once
by the shipped model (`pretrained:h36m-81_1_3-5subj`). The pages (`poseformer_jax.view`):

* one person, root-relative (what ``lift --html`` writes for keypoints without a video);
* one person with a root trajectory (a synthetic walk, 3 m across in the minute): the body
  moves and its trail is drawn;
* three tracks of the whole minute (ids 1-3), side by side;
* one person with the video's frames under the 2D keypoints: skater.mp4 of ../shared looped
  the same way to 1,800 frames (1280x720), made once in a temporary folder (skipped without
  ../shared or with --quick).

Time to first frame: Debian's Chromium (headless, WebGL by SwiftShader, so the GPU is the
CPU) driven by Playwright opens each page from ``file://`` with every other request
refused, in a fresh browser context per load; the page's ``performance.now()`` when it
has drawn its first frame (milliseconds since navigation start: reading the 1-4 MB
file, parsing it and three.js, decoding the poses, the first render), median and maximum
over --repeats loads, and the wall-clock time Playwright saw from ``goto`` to that moment.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from absl import flags

from poseformer_jax import view
from poseformer_jax.lifter import Lifter
from poseformer_jax.video import export, formats, tracks

FRAMES, FPS = 1800, 30.0
KEYPOINTS = common.REPO / "examples" / "skater_mediapipe33.npz"
VIDEO = common.REPO.parent / "shared" / "data" / "video" / "skater.mp4"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-extensions"]


def ping_pong(n: int, length: int) -> np.ndarray:
  """Indices 0..n-1..1 repeated: `length` rows of a clip of `n` frames without jumps."""
  cycle = np.r_[np.arange(n), np.arange(n - 2, 0, -1)]
  return np.resize(cycle, length)


def lifted_minute() -> tuple[np.ndarray, np.ndarray, tuple[int, int], np.ndarray]:
  """(poses (1800, 17, 3), keypoints (1800, 17, 2) px, image size, row -> clip frame)."""
  kps, size, _ = formats.load_keypoints(KEYPOINTS, "mediapipe33")
  rows = ping_pong(len(kps), FRAMES)
  from poseformer_jax.gaps import fill_gaps
  filled, _ = fill_gaps(kps[rows], joint_names=formats.H36M_JOINT_NAMES)
  poses = Lifter("pretrained:h36m-81_1_3-5subj")(filled, size)
  return poses, filled, size, rows


def looped_video(rows: np.ndarray, folder: Path) -> Path:
  """skater.mp4's frames in the order `rows` as an mp4 in `folder`."""
  import imageio.v2 as iio
  from poseformer_jax.video.ffmpeg import open_writer, quiet, video_info
  w, h = video_info(VIDEO)["size"]
  with quiet():
    reader = iio.get_reader(str(VIDEO), format="FFMPEG")
    frames = [f for f in reader]  # not list(reader): its length hint is infinite
    reader.close()
    out = folder / "skater_minute.mp4"
    writer = open_writer(out, (w, h), FPS, 1.0)
  try:
    for r in rows:
      writer.send(frames[r])
  finally:
    writer.close()
  return out


def pages(folder: Path, video: bool) -> dict[str, tuple[Path, float]]:
  """Writes the pages of every case: name -> (path, seconds to write it)."""
  poses, kps, size, rows = lifted_minute()
  mask = np.zeros(poses.shape[:2], bool)
  single = export.save_npz(folder / "one.npz", poses, kps, mask, fps=FPS, image_size=size)
  root = np.stack([np.linspace(-1.5, 1.5, FRAMES), np.zeros(FRAMES), np.full(FRAMES, 5.0)], -1)
  with np.load(single) as z:
    arrays = dict(z)
  np.savez_compressed(folder / "walk.npz", **arrays, root_3d=root.astype(np.float32),
                      poses_3d_camera=(poses + root[:, None]).astype(np.float32))
  people = [dict(track=str(i), frames=np.arange(FRAMES), poses_3d=poses, keypoints_2d=kps,
                 filled=mask) for i in (1, 2, 3)]
  tracks.save_npz(folder / "three.npz", people, fps=FPS, image_size=size)
  cases = {"one person": (single, None), "one person, root trajectory":
           (folder / "walk.npz", None), "three tracks": (folder / "three.npz", None)}
  if video:
    cases["one person + video frames"] = (single, looped_video(rows, folder))
  out = {}
  for k, (name, (npz, clip)) in enumerate(cases.items()):
    start = time.perf_counter()
    path = view.write_html(folder / f"case{k}.html", npz, video=clip)
    out[name] = (path, time.perf_counter() - start)
  return out


def first_frames(paths: dict, repeats: int) -> dict[str, list[tuple[float, float]]]:
  """name -> [(in-page ms to the first frame, Playwright's wall seconds), ...]."""
  from playwright.sync_api import sync_playwright
  exe = shutil.which("chromium") or shutil.which("chromium-browser")
  if exe is None:
    raise SystemExit("error: no chromium on PATH (Debian: apt-get install chromium)")
  out = {name: [] for name in paths}
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
    for _ in range(repeats):  # cases alternate, so background load hits all of them
      for name, (path, _) in paths.items():
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                      else r.abort())
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.poseViewer && window.poseViewer.ready", timeout=60_000)
        wall = time.perf_counter() - start
        if errors:
          raise SystemExit(f"error: {name}: {errors[0]}")
        out[name].append((page.evaluate("poseViewer.firstFrameMs"), wall))
        context.close()
    browser.close()
  return out


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_bool("video", True, "Also the case with the video's frames (needs ../shared).",
                    flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  quick = fv["quick"].value
  repeats = fv["repeats"].value or (2 if quick else 5)
  with tempfile.TemporaryDirectory() as tmp:
    made = pages(Path(tmp), fv["video"].value and not quick and VIDEO.is_file())
    times = first_frames(made, repeats)
    rows = []
    for name, (path, write_s) in made.items():
      ms = [t for t, _ in times[name]]
      wall = [w for _, w in times[name]]
      rows.append([name, path.stat().st_size / 1e6, write_s, statistics.median(ms) / 1e3,
                   max(ms) / 1e3, statistics.median(wall)])
  m = common.machine()
  title = (f"viewer page, {FRAMES} frames at {FPS:g} fps (one minute), {repeats} loads per case; "
           f"{m['cpu']}, {m['cores']} cores, load average {m.get('loadavg_start', 0):.1f}")
  headers = ["page", "MB", "write s", "first frame s (median)", "first frame s (max)",
             "goto to ready s"]
  return common.report(headers, rows, title, fv["json"].value,
                       {"rows": rows, "frames": FRAMES, "fps": FPS, "repeats": repeats})


if __name__ == "__main__":
  sys.exit(main())
