"""The video path on a clip of a minute or more: each stage alone, end to end, offline and live.

    python benchmarks/bench_video.py                          # both parts, one-minute clips
    python benchmarks/bench_video.py --part offline --seconds 30
    python benchmarks/bench_video.py --part live --latencies 40,10,0

The clips: the shared ones, looped (ffmpeg's -stream_loop, streams copied, into a temporary
folder) to at least ``--seconds``: offline the 1080p NTU clip (103 frames, 30 fps, MPEG-4),
live the 720p skater clip (185 frames, 25 fps, H.264). The model: the shipped
``pretrained:h36m-81_1_3-5subj`` (``--checkpoint``).

offline, each stage alone (frames/s = frames / seconds):
* decode — the frames at the detectors' size (`detect.frames_for`: ffmpeg, in a thread);
* detect — decode and every person found and followed (`people.detect_people`);
* fill, lift — each track's gaps filled, then `Lifter` over it, warm (the first call, with
  JIT compilation, apart);
* render — the side-by-side mp4 of everybody over the video (`render.render_people`);
* end to end — ``poseformer-jax lift CLIP --render out.mp4`` in a fresh process, wall clock
  from start to exit (start-up, model loading and compilation included).

live (``--stream``; frames as from a camera):
* throughput — the loop of ``--stream``: decode (a thread, at the detector's size), detect (a
  second thread) and `StreamingLifter.push` per frame as fast as they go, warm: frames/s;
* latency — the same with frames released at the clip's frame rate, as a camera gives them:
  from a frame's release to its pose, milliseconds (median and 95th percentile) and frames,
  for each ``--latencies`` N (`StreamingLifter(latency=N)`);
* end to end — ``poseformer-jax lift CLIP --stream`` in a fresh process, wall clock.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from absl import flags

from poseformer_jax import gaps
from poseformer_jax.data import skeleton
from poseformer_jax.lifter import Lifter
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import detect, ffmpeg, formats, people, reader, render

VIDEOS = common.REPO.parent / "shared" / "data" / "video"
OFFLINE = VIDEOS / "ntu_S001C001P001R001A001.avi"
LIVE = VIDEOS / "skater.mp4"
CHECKPOINT = "pretrained:h36m-81_1_3-5subj"


def looped(src: Path, seconds: float, folder: Path) -> tuple[Path, int]:
  """`src` played `k` times in one file (ffmpeg's -stream_loop, streams copied), k the
  fewest for `seconds`; (path, frames decoded)."""
  import imageio_ffmpeg
  info = ffmpeg.video_info(src)
  frames = sum(1 for _ in ffmpeg.iter_frames(src, size=(64, 36)))
  times = max(1, math.ceil(seconds * (info["fps"] or 25.0) / frames))
  out = folder / f"{src.stem}_x{times}{src.suffix}"
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop",
                  str(times - 1), "-i", str(src), "-c", "copy", "-an", str(out)], check=True)
  return out, sum(1 for _ in ffmpeg.iter_frames(out, size=(64, 36)))


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def offline_stages(clip: Path, lifter: Lifter, folder: Path) -> list[list]:
  """[stage, frames, seconds] of each offline stage alone (see the module doc)."""
  frames, decoded, _ = detect.frames_for(people.PeopleDetector, clip)
  n, secs = _timed(lambda: sum(1 for _ in frames))
  rows = [[f"decode at {decoded[0]}x{decoded[1]}", n, secs]]
  d, secs = _timed(lambda: people.detect_people(clip, progress=False))
  rows.append([f"decode + detect ({len(d['tracks'])} tracks)", n, secs])
  size = (d["width"], d["height"])
  found = []
  start = time.perf_counter()
  for tid, (fr, kps, scores) in d["tracks"].items():
    h36m, est = formats.to_h36m_and_estimates(kps, scores, d["layout"])
    if np.isfinite(h36m).all(-1).any(-1).sum() < 3:
      continue
    filled, mask = gaps.fill_gaps(gaps.use_estimates(h36m, est)[0], parents=skeleton.PARENTS)
    found.append(dict(track=tid, frames=fr, keypoints_2d=filled, filled=mask))
  rows.append(["fill", n, time.perf_counter() - start])
  for label in ("lift, first call (JIT)", "lift"):
    start = time.perf_counter()
    for r in found:
      r["poses_3d"] = lifter(r["keypoints_2d"], size)
    rows.append([label, n, time.perf_counter() - start])
  _, secs = _timed(lambda: render.render_people(clip, found, folder / "r.mp4",
                                                d["fps"] or 25.0, progress=False))
  rows.append(["render (decode, draw, encode)", n, secs])
  return rows


def command(args: list, folder: Path) -> float:
  """Wall seconds of ``python -m poseformer_jax lift ARGS`` (a fresh process)."""
  env = dict(os.environ, PYTHONPATH=str(common.REPO))  # this checkout's package
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "poseformer_jax", "lift", *map(str, args),
                         "--no-progress", "--overwrite"], cwd=folder, capture_output=True,
                        text=True, env=env)
  secs = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(proc.stderr[-2000:])
  print(proc.stdout.split("summary:")[-1].rstrip(), flush=True)
  return secs


def live_run(clip: Path, lifter: Lifter, latency: int, paced: bool) -> dict:
  """The online loop of ``--stream`` over `clip` (`lift_command.online`: frames decoded ahead
  in a thread, detected in a second one, pushed here); frames released at the clip's frame
  rate, as a camera gives them, when `paced`."""
  fps = ffmpeg.video_info(clip)["fps"] or 25.0
  det = detect.MediaPipeDetector()
  frames, decoded, size = detect.frames_for(det, clip)
  stream = StreamingLifter(lifter, size, latency=latency)
  released = []

  def rows():
    for i, frame in enumerate(frames):
      if paced:  # a camera gives frame i at i / fps
        time.sleep(max(0.0, start + i / fps - time.perf_counter()))
      released.append(max(time.perf_counter(), start + i / fps) if paced
                      else time.perf_counter())
      k, s = det.detect([frame])
      yield formats.to_h36m(detect.to_video_pixels(k, decoded, size), s, det.layout)[0]

  answered = []
  start = time.perf_counter()
  for row in reader.prefetch(rows(), depth=4):
    if stream.push(row) is not None:
      answered.append(time.perf_counter())
  wall = time.perf_counter() - start
  det.close()
  first = stream.first_frame or 0
  delays = sorted(a - released[first + j] for j, a in enumerate(answered))
  return {"frames": len(released), "fps": len(released) / wall, "wall": wall,
          "latency_ms": statistics.median(delays) * 1e3,
          "latency_p95_ms": delays[int(0.95 * (len(delays) - 1))] * 1e3, "clip_fps": fps}


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_enum("part", "all", ["all", "offline", "live"], "What to run.", flag_values=fv)
  flags.DEFINE_float("seconds", 60.0, "Loop the clips to at least this long.", flag_values=fv)
  flags.DEFINE_list("latencies", ["40", "10", "0"], "Live latencies N (frames).",
                    flag_values=fv)
  flags.DEFINE_string("checkpoint", CHECKPOINT, "Model.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  if not (OFFLINE.is_file() and LIVE.is_file()):
    print(f"error: the shared clips are not in {VIDEOS}", file=sys.stderr)
    return 2
  seconds = 10.0 if fv.quick else fv.seconds
  lifter = Lifter(fv.checkpoint)
  rows, payload = [], {"benchmark": "video", "checkpoint": fv.checkpoint}
  with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    if fv.part in ("all", "offline"):
      rows += offline(folder, seconds, lifter, payload)
    if fv.part in ("all", "live"):
      rows += live(folder, seconds, lifter, [int(n) for n in fv.latencies], payload)
  table = [[what, n, secs, n / secs, note] for what, n, secs, note in rows]
  payload["rows"] = table
  return common.report(["what", "frames", "seconds", "frames/s", "notes"], table,
                       f"Video path, {common.CORES} cores, model {fv.checkpoint}",
                       fv.json, payload)


def offline(folder: Path, seconds: float, lifter: Lifter, payload: dict) -> list[list]:
  clip, n = looped(OFFLINE, seconds, folder)
  info = ffmpeg.video_info(clip)
  payload["offline_clip"] = {"frames": n, "size": info["size"], "fps": info["fps"]}
  name = f"{info['size'][1]}p, {n} frames"
  rows = [[f"offline {name}: {what}", frames, secs, ""]
          for what, frames, secs in offline_stages(clip, lifter, folder)]
  secs = command([clip, "--render", folder / "out.mp4"], folder)
  rows.append([f"offline {name}: lift VIDEO --render", n, secs, "wall, start-up in"])
  return rows


def live(folder: Path, seconds: float, lifter: Lifter, latencies: list, payload: dict):
  clip, n = looped(LIVE, seconds, folder)
  info = ffmpeg.video_info(clip)
  name = f"{info['size'][1]}p, {n} frames"
  live_run(clip, lifter, latencies[0], paced=False)  # warm: compilation, MediaPipe's start
  r = live_run(clip, lifter, latencies[0], paced=False)
  rows = [[f"live {name}: decode, detect, push per frame", r["frames"], r["wall"], "steady"]]
  payload["live"] = {"throughput": r, "paced": {}}
  for lat in latencies:
    r = live_run(clip, lifter, lat, paced=True)
    payload["live"]["paced"][lat] = r
    rows.append([f"live {name}: as a camera at {r['clip_fps']:g} fps, latency {lat} frames",
                 r["frames"], r["wall"], f"pose {r['latency_ms']:.0f} ms after its frame "
                 f"(95 %: {r['latency_p95_ms']:.0f} ms)"])
  secs = command([clip, "--stream", "--output", folder / "live.npz"], folder)
  rows.append([f"live {name}: lift VIDEO --stream", n, secs, "wall, start-up in"])
  return rows


if __name__ == "__main__":
  sys.exit(main())
