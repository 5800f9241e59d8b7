"""The video path on a clip of a minute or more: each stage, end to end, offline and live.

    python benchmarks/bench_video.py                          # both parts, one-minute clips
    python benchmarks/bench_video.py --part offline --seconds 30
    python benchmarks/bench_video.py --part live --latencies 40,10,0

The clips: the shared ones, looped (ffmpeg's -stream_loop, streams copied, into a temporary
folder) to at least ``--seconds``: offline the 1080p NTU clip (103 frames, 30 fps, MPEG-4),
live the 720p skater clip (185 frames, 25 fps, H.264). The model: the shipped
``pretrained:h36m-81_1_3-5subj`` (``--checkpoint``).

offline (frames/s = frames / seconds):
* decode — the frames at the detectors' size alone (`detect.frames_for`: ffmpeg, a thread);
* per stage — ``poseformer-jax lift CLIP --render out.mp4 --sequential`` in a fresh process,
  its summary's stages one after the other: detect (decoding in its thread), fill, lift
  (JIT compilation included), export, render (decode, draw, encode);
* end to end — the same command without ``--sequential`` (the stages overlapped: lifting
  during detection, rendering in its own process) and with it, wall clock from start to
  exit (start-up, model loading and compilation included).

live (``--stream``; frames as from a camera):
* throughput — the loop of ``--stream``: decode (a thread, at the detector's size), detect (a
  second thread) and `StreamingLifter.push` per frame as fast as they go, warm: frames/s;
* latency — the same on the first ``--paced-seconds`` with frames released at the clip's
  frame rate, as a camera gives them: from a frame's release to its pose, milliseconds
  (median and 95th percentile) and frames, for each ``--latencies`` N
  (`StreamingLifter(latency=N)`);
* end to end — ``poseformer-jax lift CLIP --stream`` in a fresh process, wall clock.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from absl import flags

from poseformer_jax.lifter import Lifter
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import detect, ffmpeg, formats, people, reader

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


def stage_rows(summary: str) -> list[list]:
  """[stage, frames, seconds, note] of the stage table `lift` prints at its end."""
  rows = []
  for line in summary.splitlines():
    m = re.match(r"^  (\S+)\s+(\d*)\s+([\d.]+)\s*([\d.]*)\s*(?:\((.*)\))?$", line)
    if m and m.group(1) != "stage":
      rows.append([m.group(1), int(m.group(2) or 0), float(m.group(3)), m.group(5) or ""])
  return rows


def command(args: list, folder: Path) -> tuple[float, str]:
  """Wall seconds and the summary of ``python -m poseformer_jax lift ARGS`` (a fresh
  process)."""
  env = dict(os.environ, PYTHONPATH=str(common.REPO))  # this checkout's package
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "poseformer_jax", "lift", *map(str, args),
                         "--no-progress", "--overwrite"], cwd=folder, capture_output=True,
                        text=True, env=env)
  secs = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(proc.stderr[-2000:])
  summary = proc.stdout.split("summary:")[-1].rstrip()
  print(f"{' '.join(map(str, args))}: {secs:.1f} s\nsummary:{summary}", flush=True)
  return secs, summary


def live_run(clip: Path, lifter: Lifter, latency: int, paced: bool,
             max_frames: int | None = None) -> dict:
  """The online loop of ``--stream`` over `clip` (`lift_command.online`: frames decoded ahead
  in a thread, detected in a second one, pushed here); frames released at the clip's frame
  rate, as a camera gives them, when `paced`."""
  fps = ffmpeg.video_info(clip)["fps"] or 25.0
  det = detect.MediaPipeDetector()
  frames, decoded, size = detect.frames_for(det, clip, max_frames)
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
  flags.DEFINE_float("paced-seconds", 20.0, "Seconds of the live clip paced as a camera, "
                     "for each latency.", flag_values=fv)
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
  rows, payload = [], {"benchmark": "video", "checkpoint": fv.checkpoint,
                       "machine": common.machine()}
  with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    if fv.part in ("all", "offline"):
      rows += offline(folder, seconds, fv.checkpoint, payload)
    if fv.part in ("all", "live"):
      paced = min(seconds, 5.0 if fv.quick else fv["paced-seconds"].value)
      rows += live(folder, seconds, paced, Lifter(fv.checkpoint),
                   [int(n) for n in fv.latencies], payload)
  table = [[what, n, secs, n / secs if secs and n else None, note] for what, n, secs, note in rows]
  payload["rows"] = table
  return common.report(["what", "frames", "seconds", "frames/s", "notes"], table,
                       f"Video path, {common.CORES} cores, model {fv.checkpoint}",
                       fv.json, payload)


def offline(folder: Path, seconds: float, checkpoint: str, payload: dict) -> list[list]:
  clip, n = looped(OFFLINE, seconds, folder)
  info = ffmpeg.video_info(clip)
  payload["offline_clip"] = {"frames": n, "size": info["size"], "fps": info["fps"]}
  name = f"{info['size'][1]}p, {n} frames"
  frames, decoded, _ = detect.frames_for(people.PeopleDetector, clip)
  count, secs = _timed(lambda: sum(1 for _ in frames))
  rows = [[f"offline {name}: decode at {decoded[0]}x{decoded[1]}", count, secs, "alone"]]
  args = [clip, "--render", folder / "out.mp4", f"--checkpoint={checkpoint}"]
  wall, summary = command([*args, "--sequential"], folder)
  payload["sequential_summary"] = summary
  for stage, frames_, secs, note in stage_rows(summary):
    rows.append([f"offline {name}: {stage}", frames_, secs, note or "one after the other"])
  rows.append([f"offline {name}: lift VIDEO --render --sequential", n, wall,
               "wall, start-up in"])
  wall, summary = command(args, folder)
  payload["overlapped_summary"] = summary
  rows.append([f"offline {name}: lift VIDEO --render", n, wall,
               "wall, start-up in; stages overlapped"])
  return rows


def live(folder: Path, seconds: float, paced_seconds: float, lifter: Lifter, latencies: list,
         payload: dict) -> list[list]:
  clip, n = looped(LIVE, seconds, folder)
  info = ffmpeg.video_info(clip)
  name = f"{info['size'][1]}p, {n} frames"
  live_run(clip, lifter, latencies[0], paced=False, max_frames=50)  # warm: compilation
  r = live_run(clip, lifter, latencies[0], paced=False)
  rows = [[f"live {name}: decode, detect, push per frame", r["frames"], r["wall"], "steady"]]
  payload["live"] = {"throughput": r, "paced": {}}
  paced = int(paced_seconds * (info["fps"] or 25.0))
  for lat in latencies:
    r = live_run(clip, lifter, lat, paced=True, max_frames=paced)
    payload["live"]["paced"][lat] = r
    rows.append([f"live {name}: as a camera at {r['clip_fps']:g} fps, latency {lat} frames",
                 r["frames"], r["wall"], f"pose {r['latency_ms']:.0f} ms after its frame "
                 f"(95 %: {r['latency_p95_ms']:.0f} ms)"])
  secs, _ = command([clip, "--stream", "--output", folder / "live.npz"], folder)
  rows.append([f"live {name}: lift VIDEO --stream", n, secs, "wall, start-up in"])
  return rows


if __name__ == "__main__":
  sys.exit(main())
