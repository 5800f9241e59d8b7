"""Lift a whole clip of 2D keypoints to 3D: the `lift` function and its CLI.

Function::

    from poseformer_jax import lift, load_checkpoint
    poses = lift(keypoints_2d, image_size=(1280, 720), checkpoint="ckpt/")   # (T, 17, 3)
    # many clips: load once, pass the triple (the jitted forward is then reused)
    ckpt = load_checkpoint("ckpt/")
    poses = lift(keypoints_2d, (1280, 720), checkpoint=ckpt)

CLI::

    python -m poseformer_jax.lift --keypoints skater_mediapipe33.npz --format mediapipe33 \\
        --checkpoint ckpt/ --output out.npz [--json out.json] [--bvh out.bvh] \\
        [--video skater.mp4 --render out.mp4] [--gif out.gif] [--contact-sheet out.png] \\
        [--image-size W H] [--overwrite] [--verbose]

What happens: keypoints are read and mapped to the H36M 17-joint layout
(`poseformer_jax.video.formats`), missing joints are interpolated along time
(`poseformer_jax.video.gaps`, the filled frames are reported), pixels are
normalised by the image size (``x / w * 2 - [1, h / w]``), and every frame is
lifted by the project's one inference driver (`poseformer_jax.inference.Predictor`):
an F-frame window centred on it (edge-padded at the clip's ends), test-time
flip averaging, batched jitted forward passes. Output: camera-space metres
(x right, y down, z forward), root (pelvis) relative.

Only numpy is imported at module level, so ``import poseformer_jax`` stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# (id(model), id(params), batch, flip) -> (params, model, Predictor), least recently used first.
_PREDICTOR_CACHE: dict = {}
_CACHE_SIZE = 4


def lift(keypoints_2d, image_size, checkpoint, *, batch_size: int = 1024, flip: bool = True,
         chunk_size: int | None = None) -> np.ndarray:
  """3D poses of every frame of a clip.

  Args:
    keypoints_2d: (T, 17, 2) pixels in the H36M-17 layout (see
      `poseformer_jax.video.formats`). NaN marks missing joints; they are
      interpolated along time first (`poseformer_jax.video.gaps.fill_gaps`).
      Any T >= 1 works, also shorter than the model's receptive field (the
      windows are edge-padded).
    image_size: (width, height) in pixels of the image the keypoints refer to.
    checkpoint: a checkpoint directory, or the ``(model, params, config)``
      triple from `poseformer_jax.load_checkpoint` (load once for many clips).
    batch_size: windows per forward pass (capped at the clip length rounded up
      to 16, so short clips do not compute padding).
    flip: test-time flip averaging (as the published results).
    chunk_size: if set, lift the clip in pieces of this many frames, each with
      ``pad = (F - 1) // 2`` frames of context on both sides (bounded memory
      for long clips). Every frame then sees exactly the window it sees when
      the whole clip is lifted at once (edge padding only happens at the
      clip's real ends), so the result is the same.
  Returns:
    (T, 17, 3) float32, camera-space metres, root-relative (pelvis = 0).
  Raises:
    DataError: bad shapes, non-positive image size, infinite values, or no
      usable frames. CheckpointError: unreadable checkpoint.
  """
  from poseformer_jax.data import cameras
  from poseformer_jax.errors import DataError
  from poseformer_jax.video.formats import H36M_JOINT_NAMES
  from poseformer_jax.video.gaps import fill_gaps

  x = np.asarray(keypoints_2d, np.float64) if _is_numeric(keypoints_2d) else None
  if x is None or x.ndim != 3 or x.shape[1:] != (17, 2) or x.shape[0] < 1:
    shape = getattr(x, "shape", None) if x is not None else type(keypoints_2d).__name__
    raise DataError(f"keypoints_2d must have shape (T, 17, 2) with T >= 1 (H36M-17 pixels), "
                    f"got {shape}")
  w, h = _check_image_size(image_size)
  if np.isnan(x).any():
    x, _ = fill_gaps(x, joint_names=H36M_JOINT_NAMES)
  if not np.isfinite(x).all():
    raise DataError("keypoints_2d contain infinite values")
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    raise DataError(f"chunk_size must be a positive integer, got {chunk_size}")
  if int(batch_size) != batch_size or batch_size < 1:
    raise DataError(f"batch_size must be a positive integer, got {batch_size}")

  t = x.shape[0]
  model, params, _ = _resolve_checkpoint(checkpoint)
  pad = (int(model.num_frames) - 1) // 2
  span = t if chunk_size is None else min(t, int(chunk_size) + 2 * pad)
  predictor = _predictor(model, params, min(int(batch_size), _round_up(span, 16)), bool(flip))
  xn = cameras.normalize_screen(x, w, h).astype(np.float32)
  if chunk_size is None:
    return predictor.predict_sequence(xn)
  out = np.empty((t, 17, 3), np.float32)
  for start in range(0, t, int(chunk_size)):
    stop = min(t, start + int(chunk_size))
    lo, hi = max(0, start - pad), min(t, stop + pad)
    out[start:stop] = predictor.predict_sequence(xn[lo:hi])[start - lo:stop - lo]
  return out


def _is_numeric(a) -> bool:
  try:
    np.asarray(a, np.float64)
    return True
  except (TypeError, ValueError):
    return False


def _round_up(n: int, k: int) -> int:
  return -(-n // k) * k


def _check_image_size(image_size) -> tuple[float, float]:
  from poseformer_jax.errors import DataError
  try:
    w, h = (float(v) for v in image_size)
  except (TypeError, ValueError):
    raise DataError(f"image_size must be (width, height), got {image_size!r}") from None
  if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
    raise DataError(f"image size must be positive, got {image_size!r} (width, height)")
  return w, h


def _resolve_checkpoint(checkpoint):
  from poseformer_jax.errors import DataError
  if isinstance(checkpoint, (str, os.PathLike)):
    from poseformer_jax.checkpoint import load_checkpoint
    return load_checkpoint(checkpoint)
  if isinstance(checkpoint, (tuple, list)) and len(checkpoint) == 3:
    model = checkpoint[0]
    if int(getattr(model, "num_joints", 17)) != 17:
      raise DataError(f"lift needs a 17-joint model, the checkpoint has {model.num_joints}")
    return tuple(checkpoint)
  raise DataError("checkpoint must be a directory or the (model, params, config) triple from "
                  f"load_checkpoint, got {type(checkpoint).__name__}")


def _predictor(model, params, batch_size: int, flip: bool):
  """A `Predictor` for these weights, reused across calls (its jitted forward compiles once)."""
  from poseformer_jax.data import skeleton
  from poseformer_jax.inference import Predictor
  key = (id(model), id(params), batch_size, flip)
  hit = _PREDICTOR_CACHE.pop(key, None)
  if hit is not None and hit[0] is params and hit[1] is model:
    _PREDICTOR_CACHE[key] = hit  # most recently used last
    return hit[2]
  predictor = Predictor(model, params, batch_size=batch_size, flip=flip,
                        kps_left=skeleton.JOINTS_LEFT, kps_right=skeleton.JOINTS_RIGHT,
                        joints_left=skeleton.JOINTS_LEFT, joints_right=skeleton.JOINTS_RIGHT)
  while len(_PREDICTOR_CACHE) >= _CACHE_SIZE:
    _PREDICTOR_CACHE.pop(next(iter(_PREDICTOR_CACHE)))
  _PREDICTOR_CACHE[key] = (params, model, predictor)  # holding them keeps the ids unique
  return predictor


# --- CLI ----------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors (exit status 2)."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
  from poseformer_jax.video.formats import FORMATS
  p = _Parser(
      prog="python -m poseformer_jax.lift",
      description="Lift 2D keypoints of a video to 3D poses with a PoseFormerV2 checkpoint; "
                  "export npz/JSON/BVH and render a side-by-side video.",
      epilog="Outputs are never overwritten unless --overwrite is given. The image size comes "
             "from --image-size, else the keypoint file, else --video.")
  p.add_argument("--keypoints", required=True, metavar="FILE",
                 help="keypoint file (.npz/.json), or a folder of OpenPose JSON files")
  p.add_argument("--format", required=True, choices=FORMATS, help="layout of --keypoints")
  p.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory")
  p.add_argument("--output", required=True, metavar="OUT.npz",
                 help="3D poses, 2D input, filled mask, fps, joint names (npz)")
  p.add_argument("--json", metavar="OUT.json", help="the same as JSON")
  p.add_argument("--bvh", metavar="OUT.bvh", help="BVH skeleton animation (Blender: File > "
                 "Import > Motion Capture (.bvh))")
  p.add_argument("--video", metavar="IN.mp4", help="the input video (drawn under the 2D "
                 "skeleton; also gives image size and fps)")
  p.add_argument("--render", metavar="OUT.mp4", help="side-by-side video (.mp4 or .gif); "
                 "without --video the 2D side is a blank canvas")
  p.add_argument("--gif", metavar="OUT.gif", help="side-by-side animated GIF (half size)")
  p.add_argument("--contact-sheet", metavar="OUT.png", help="PNG grid of 6 frames")
  p.add_argument("--image-size", nargs=2, type=int, metavar=("W", "H"),
                 help="image size in pixels (if the keypoint file has none)")
  p.add_argument("--fps", type=float, help="frame rate (default: keypoint file, video, else 25)")
  p.add_argument("--min-score", type=float,
                 help="confidence below which a joint counts as missing (default per format)")
  p.add_argument("--batch-size", type=int, default=1024, help="windows per forward pass")
  p.add_argument("--chunk-size", type=int, help="lift in chunks of this many frames (same "
                 "result, bounded memory)")
  p.add_argument("--no-flip", action="store_true", help="disable test-time flip averaging")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.add_argument("--overwrite", action="store_true", help="replace existing output files")
  p.add_argument("--verbose", action="store_true", help="full tracebacks on errors")
  return p


_SUFFIXES = {"output": (".npz",), "json": (".json",), "bvh": (".bvh",),
             "render": (".mp4", ".gif"), "gif": (".gif",), "contact_sheet": (".png",)}


def _check_outputs(args) -> None:
  from poseformer_jax.errors import DataError
  seen = {}
  for name, suffixes in _SUFFIXES.items():
    value = getattr(args, name)
    if value is None:
      continue
    path = Path(value)
    flag = "--" + name.replace("_", "-")
    if path.suffix.lower() not in suffixes:
      raise DataError(f"{flag} {path}: must end with {' or '.join(suffixes)}")
    if path.resolve() in seen:
      raise DataError(f"{flag} {path}: same file as {seen[path.resolve()]}")
    seen[path.resolve()] = flag
    if path.exists() and not args.overwrite:
      raise DataError(f"{path}: already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
      raise DataError(f"{path}: folder {path.parent} does not exist")


def run(args) -> int:
  """The CLI's work, on parsed arguments. Returns the exit status."""
  from poseformer_jax.errors import DataError
  from poseformer_jax.video import export, formats, gaps

  _check_outputs(args)
  if args.video is not None and not Path(args.video).is_file():
    raise DataError(f"{args.video}: no such video file")
  if args.batch_size < 1:
    raise DataError(f"--batch-size must be >= 1, got {args.batch_size}")

  kps, size, fps = formats.load_keypoints(args.keypoints, args.format, min_score=args.min_score)
  video = None
  if args.video is not None:
    from poseformer_jax.video import render
    video = render.video_info(args.video)
  if args.image_size is not None:
    size = tuple(args.image_size)
  if video is not None and size is not None and tuple(size) != tuple(video["size"]):
    raise DataError(f"{args.video}: video is {video['size'][0]}x{video['size'][1]} but the "
                    f"keypoints' image size is {size[0]}x{size[1]}")
  size = size or (video["size"] if video else None)
  if size is None:
    raise DataError(f"{args.keypoints}: the image size is unknown; pass --image-size W H or "
                    "--video")
  try:
    _check_image_size(size)
  except DataError as e:
    raise DataError(f"{args.keypoints}: {e}") from None
  fps = args.fps or fps or (video["fps"] if video else None)
  if fps is None:
    fps = 25.0
    print("fps unknown (not in the keypoint file, no --video, no --fps): using 25")
  print(f"read {kps.shape[0]} frames ({args.format}) from {args.keypoints}; "
        f"image {size[0]}x{size[1]}, {fps:g} fps")
  if video is not None and (args.render or args.gif or args.contact_sheet):
    frames = render.count_frames(args.video)
    if frames < kps.shape[0]:
      raise DataError(f"{args.video}: video has {frames} frames but there are {kps.shape[0]} "
                      "frames of keypoints")
    if frames > kps.shape[0]:
      print(f"note: {args.video} has {frames} frames; rendering the first {kps.shape[0]}")

  filled, mask = gaps.fill_gaps(kps, joint_names=formats.H36M_JOINT_NAMES,
                                source=str(args.keypoints))
  print(gaps.describe_filled(mask))

  from poseformer_jax.checkpoint import load_checkpoint
  ckpt = load_checkpoint(args.checkpoint)
  variant = ckpt[2].get("variant", "?")
  start = time.perf_counter()
  poses = lift(filled, size, ckpt, batch_size=args.batch_size, flip=not args.no_flip,
               chunk_size=args.chunk_size)
  secs = time.perf_counter() - start
  print(f"lifted {len(poses)} frames with model {variant} (F={ckpt[0].num_frames}) in "
        f"{secs:.1f} s, JIT compilation included")

  written = [export.save_npz(args.output, poses, filled, mask, fps=fps, image_size=size)]
  if args.json:
    written.append(export.save_json(args.json, poses, filled, mask, fps=fps, image_size=size))
  if args.bvh:
    written.append(export.write_bvh(args.bvh, poses, fps))
  videos = [v for v in (args.render, args.gif) if v]
  if videos or args.contact_sheet:
    from poseformer_jax.video import render
    if videos:
      written += render.render_video(args.video, filled, poses, videos, fps, image_size=size,
                                     filled=mask, progress=not args.no_progress)
    if args.contact_sheet:
      written.append(render.contact_sheet(args.video, filled, poses, args.contact_sheet,
                                          image_size=size, filled=mask))
  for path in written:
    print(f"wrote {path}")
  return 0


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  from poseformer_jax.errors import PoseFormerError
  try:
    return run(args)
  except (PoseFormerError, OSError) as e:
    if args.verbose:
      raise
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
