"""Rendering lifted poses: side-by-side video (mp4 / gif) and a PNG contact sheet.

Each output frame: on the left the input video frame (or a blank canvas of
the image size) with the 2D skeleton drawn on it; on the right the 3D
skeleton. Left limbs are blue, right limbs red, the trunk grey (the
person's left/right); interpolated 2D joints are drawn hollow, joints lifted from
the detector's low-confidence estimate pale.

The 3D view: the model's camera-space pose (x right, y down, z forward),
root at the centre, shown with y up and seen from slightly above and to the
side of the camera (``elev=15, azim=-70``; ``azim=-90, elev=0`` is exactly the
camera's view), fixed axis limits of +-``radius`` metres so motion is
comparable across frames.

Speed: one matplotlib figure (Agg) per output. Its static parts (3D box,
grid, labels) are drawn once and kept as a background; per frame the
background is restored, the video frame (decoded by ffmpeg directly at the
panel's size) is pasted into the left panel's pixels and only the skeleton
artists are drawn (blitting), then the canvas's RGBA buffer is read. Videos
are decoded and encoded by ffmpeg through imageio / imageio-ffmpeg (H.264
``veryfast``; GIFs with one optimised 256-colour palette for the clip).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from poseformer_jax.errors import DataError
from poseformer_jax.video.formats import H36M_LEFT, H36M_PARENTS, H36M_RIGHT

LEFT_COLOUR = "#1f6fd1"
RIGHT_COLOUR = "#e0302a"
CENTRE_COLOUR = "#505050"
BONES = tuple((p, c) for c, p in enumerate(H36M_PARENTS) if p >= 0)
_BLANK = 235  # grey level of the blank canvas


def _bone_colour(child: int) -> str:
  if child in H36M_LEFT:
    return LEFT_COLOUR
  if child in H36M_RIGHT:
    return RIGHT_COLOUR
  return CENTRE_COLOUR


def _joint_colour(j: int) -> str:
  return _bone_colour(j)


class PoseRenderer:
  """Draws one side-by-side frame at a time into a reused matplotlib figure.

  Args:
    image_size: (width, height) of the input video / keypoint pixel space.
    height: output height in pixels (a multiple of 16 keeps ffmpeg happy);
      the left panel keeps the image's aspect ratio, the right one is square.
    elev, azim: 3D view angles (degrees), see the module doc.
    radius: half extent of the 3D axes, metres.
  """

  def __init__(self, image_size: Sequence[int], *, height: int = 480, elev: float = 15.0,
               azim: float = -70.0, radius: float = 1.0):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  registers the '3d' projection

    w, h = (int(v) for v in image_size)
    if w <= 0 or h <= 0:
      raise DataError(f"image size must be positive, got {w}x{h}")
    self.image_size = (w, h)
    self.height = int(height) // 16 * 16 or 16
    self.left_width = max(16, int(round(self.height * w / h / 16)) * 16)
    self.right_width = self.height
    self.width = self.left_width + self.right_width
    dpi = 100
    with matplotlib.rc_context({"font.size": 9}):
      fig = Figure(figsize=(self.width / dpi, self.height / dpi), dpi=dpi, facecolor="white")
      self.canvas = FigureCanvasAgg(fig)
      self.fig = fig

      ax = fig.add_axes((0, 0, self.left_width / self.width, 1))
      ax.set_axis_off()
      ax.set_xlim(0, w)
      ax.set_ylim(h, 0)
      self.lines_2d = [ax.plot([], [], "-", lw=2.5, color=_bone_colour(c), zorder=2,
                               solid_capstyle="round")[0] for _, c in BONES]
      self._face = np.array([matplotlib.colors.to_rgba(_joint_colour(j)) for j in range(17)])
      self.points_2d = ax.scatter(np.zeros(17), np.zeros(17), s=14, zorder=3,
                                  facecolors=self._face, edgecolors="white", linewidths=0.6)
      self.text = ax.text(0.01, 0.99, "", transform=ax.transAxes, va="top", ha="left",
                          color="white", fontsize=9,
                          bbox=dict(facecolor="black", alpha=0.55, pad=2, edgecolor="none"))
      self.ax_2d = ax

      ax3 = fig.add_axes((self.left_width / self.width, 0, self.right_width / self.width, 1),
                         projection="3d")
      ax3.view_init(elev=elev, azim=azim)
      ax3.set_xlim(-radius, radius)
      ax3.set_ylim(-radius, radius)
      ax3.set_zlim(-radius, radius)
      ax3.set_box_aspect((1, 1, 1), zoom=1.1)
      ax3.set_xlabel("x (right)", labelpad=-12)
      ax3.set_ylabel("depth", labelpad=-12)
      ax3.set_zlabel("up", labelpad=-12)
      for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
        axis.set_ticklabels([])
      self.lines_3d = [ax3.plot([0, 0], [0, 0], [0, 0], "-", lw=2.5,
                                color=_bone_colour(c))[0] for _, c in BONES]
      for line in self.lines_3d:  # poses beyond +-radius stay inside the right panel
        line.set_clip_box(ax3.bbox)
        line.set_clip_on(True)
      self.ax_3d = ax3

    # Blitting: draw the static parts (3D box, grid, labels) once, keep that
    # background, and per frame paste it back, paint the video frame into the
    # left panel's pixels and draw only the skeleton artists on top.
    self._artists_2d = [*self.lines_2d, self.points_2d, self.text]
    for a in self._artists_2d + self.lines_3d:
      a.set_animated(True)
    self.canvas.draw()
    self._background = self.canvas.copy_from_bbox(self.fig.bbox)

  @staticmethod
  def _to_plot(pose: np.ndarray) -> np.ndarray:
    """Camera space (x right, y down, z forward) -> plot axes (x, depth, up)."""
    return np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], -1)

  def draw(self, frame: np.ndarray | None, keypoints_2d: np.ndarray, pose_3d: np.ndarray,
           filled: np.ndarray | None = None, label: str = "",
           low_confidence: np.ndarray | None = None) -> np.ndarray:
    """One output frame as (height, width, 3) uint8.

    frame: (h', w', 3) uint8 RGB, ideally already (height, left_width) (see
    `frame_size`; other sizes are resized); None draws the blank canvas.
    keypoints_2d (17, 2) pixels of the original image; pose_3d (17, 3) camera
    space; filled (17,) bool (drawn hollow); label: text in the top left corner;
    low_confidence (17,) bool (drawn pale).
    """
    kp = np.asarray(keypoints_2d, np.float64)
    for line, (a, b) in zip(self.lines_2d, BONES):
      line.set_data(kp[[a, b], 0], kp[[a, b], 1])
    self.points_2d.set_offsets(kp)
    face = self._face.copy()
    if low_confidence is not None:
      face[np.asarray(low_confidence, bool), 3] = 0.35
    if filled is not None:
      face[np.asarray(filled, bool)] = (1, 1, 1, 0)
    self.points_2d.set_facecolors(face)
    self.text.set_text(label)
    self.text.set_visible(bool(label))
    p = self._to_plot(np.asarray(pose_3d, np.float64) - np.asarray(pose_3d, np.float64)[:1])
    for line, (a, b) in zip(self.lines_3d, BONES):
      line.set_data_3d(p[[a, b], 0], p[[a, b], 1], p[[a, b], 2])

    self.canvas.restore_region(self._background)
    buf = np.asarray(self.canvas.buffer_rgba())
    left = buf[:, :self.left_width]
    if frame is None:
      left[..., :3] = _BLANK
    else:
      left[..., :3] = self._fit(np.asarray(frame, np.uint8)[..., :3])
    left[..., 3] = 255
    for a in self._artists_2d:
      self.ax_2d.draw_artist(a)
    for a in self.lines_3d:
      self.ax_3d.draw_artist(a)
    return buf[..., :3].copy()

  def _fit(self, frame: np.ndarray) -> np.ndarray:
    if frame.shape[:2] == (self.height, self.left_width):
      return frame
    from PIL import Image
    return np.asarray(Image.fromarray(frame).resize((self.left_width, self.height),
                                                    Image.Resampling.BILINEAR))

  @property
  def frame_size(self) -> tuple[int, int]:
    """(width, height) to decode video frames at, so the 2D panel needs no resampling."""
    return self.left_width, self.height

  def close(self):
    self.fig.clear()


@contextlib.contextmanager
def _quiet_ffmpeg_start():
  """Mutes two harmless messages when an ffmpeg subprocess starts: JAX's warning
  about os.fork (subprocess forks and immediately execs ffmpeg, which is safe)
  and imageio-ffmpeg's note that frames are decoded at a size other than the
  source's (that scaling is what we ask for)."""
  logger = logging.getLogger("imageio_ffmpeg")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                              category=RuntimeWarning)
      yield
  finally:
    logger.setLevel(level)


# --- video input --------------------------------------------------------------------------------

def video_info(path: str | os.PathLike) -> dict:
  """{'size': (w, h), 'fps': float or None} of a video (reads the header only)."""
  import imageio.v2 as iio
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such video file")
  try:
    with _quiet_ffmpeg_start():
      reader = iio.get_reader(str(path), format="FFMPEG")
    meta = reader.get_meta_data()
    reader.close()
  except Exception as e:  # imageio/ffmpeg raise many types for unreadable media
    raise DataError(f"{path}: cannot read video ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''})") from None
  fps = meta.get("fps")
  return {"size": tuple(int(v) for v in meta["size"]),
          "fps": float(fps) if fps and np.isfinite(fps) and fps > 0 else None}


def count_frames(path: str | os.PathLike) -> int:
  """Number of frames of a video (ffmpeg decodes it once; about a second for a short clip)."""
  import imageio_ffmpeg
  try:
    with _quiet_ffmpeg_start():
      return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])
  except Exception as e:  # ffmpeg failures surface as RuntimeError/OSError
    raise DataError(f"{path}: cannot count video frames ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _video_frames(path, num_frames: int, size: tuple[int, int], image_size,
                  start: int = 0) -> Iterator:
  """Yields `num_frames` RGB frames decoded at `size` (w, h), from frame `start` on;
  None for no video.

  Raises DataError if the video's size differs from `image_size` or it has
  fewer frames than the keypoints.
  """
  if path is None:
    for _ in range(num_frames):
      yield None
    return
  import imageio.v2 as iio
  info = video_info(path)
  if tuple(info["size"]) != tuple(image_size):
    raise DataError(f"{path}: video is {info['size'][0]}x{info['size'][1]} but the keypoints' "
                    f"image size is {image_size[0]}x{image_size[1]}")
  with _quiet_ffmpeg_start():
    reader = iio.get_reader(str(path), format="FFMPEG", size=tuple(size))
    frames = iter(reader)
    first = next(frames, None)  # ffmpeg starts on the first read
  try:
    n = 0
    frames = itertools.islice(itertools.chain([] if first is None else [first], frames),
                              start, None)
    for frame in frames:
      if n == num_frames:
        break
      yield frame
      n += 1
    if n < num_frames:
      raise DataError(f"{path}: video has {n + start} frames but there are keypoints up to "
                      f"frame {start + num_frames}")
  finally:
    reader.close()


def _check_inputs(keypoints_2d, poses_3d, filled, low_confidence=None):
  kps = np.asarray(keypoints_2d, np.float64)
  poses = np.asarray(poses_3d, np.float64)
  if kps.ndim != 3 or kps.shape[1:] != (17, 2):
    raise DataError(f"keypoints_2d must be (T, 17, 2), got {kps.shape}")
  if poses.shape != kps.shape[:1] + (17, 3):
    raise DataError(f"poses_3d must be ({kps.shape[0]}, 17, 3), got {poses.shape}")
  mask = np.zeros(kps.shape[:2], bool) if filled is None else np.asarray(filled, bool)
  low = np.zeros(kps.shape[:2], bool) if low_confidence is None else np.asarray(
      low_confidence, bool)
  if mask.shape != kps.shape[:2] or low.shape != kps.shape[:2]:
    raise DataError(f"filled and low_confidence must be {kps.shape[:2]}, got {mask.shape} and "
                    f"{low.shape}")
  return kps, poses, mask, low


def _label(i: int, t: int, mask_row: np.ndarray, low_row: np.ndarray) -> str:
  notes = [f"{n} {what}" for n, what in ((int(mask_row.sum()), "joints interpolated"),
                                          (int(low_row.sum()), "low-confidence")) if n]
  return f"frame {i + 1}/{t}" + (f"  ({', '.join(notes)})" if notes else "")


# --- outputs ------------------------------------------------------------------------------------

def render_video(video_path: str | os.PathLike | None, keypoints_2d_px, poses_3d,
                 out_path: str | os.PathLike | Sequence[str | os.PathLike], fps: float, *,
                 image_size: Sequence[int] | None = None, filled=None, low_confidence=None,
                 height: int = 480, gif_scale: float = 0.5, progress: bool = True,
                 first_frame: int = 0, **view) -> list[Path]:
  """Renders the side-by-side video.

  Args:
    video_path: the input video, or None for a blank canvas of `image_size`.
    keypoints_2d_px: (T, 17, 2) H36M-17 pixels (gap-filled).
    poses_3d: (T, 17, 3) lifted poses.
    out_path: one path or several; ``.mp4`` (H.264, yuv420p) and/or ``.gif``
      (every frame, scaled by `gif_scale`). All outputs are made in one pass.
    fps: output frame rate.
    image_size: (w, h) of the keypoints' pixel space; default the video's size.
    filled: optional (T, 17) bool, joints drawn hollow (interpolated).
    low_confidence: optional (T, 17) bool, joints drawn pale (low-confidence estimates).
    height: output height in pixels; `view`: elev, azim, radius (see `PoseRenderer`).
    first_frame: the video frame that the first keypoints belong to.
  Returns:
    The written paths.
  """
  kps, poses, mask, low = _check_inputs(keypoints_2d_px, poses_3d, filled, low_confidence)
  paths = [Path(out_path)] if isinstance(out_path, (str, os.PathLike)) else [Path(p) for p in out_path]
  for p in paths:
    if p.suffix.lower() not in (".mp4", ".gif"):
      raise DataError(f"{p}: unsupported video output; use .mp4 or .gif")
  if not fps or fps <= 0:
    raise DataError(f"fps must be positive, got {fps}")
  if image_size is None:
    if video_path is None:
      raise DataError("render_video needs image_size when no video is given")
    image_size = video_info(video_path)["size"]
  renderer = PoseRenderer(image_size, height=height, **view)
  t = kps.shape[0]
  writers = []
  try:
    with _quiet_ffmpeg_start():
      for p in paths:
        writers.append(_open_writer(p, (renderer.width, renderer.height), float(fps), gif_scale))
    frames = _video_frames(video_path, t, renderer.frame_size, image_size, first_frame)
    for i, frame in enumerate(tqdm(frames, total=t, desc="render", unit="frame",
                                   disable=not progress)):
      img = renderer.draw(frame, kps[i], poses[i], mask[i], _label(i, t, mask[i], low[i]),
                          low[i])
      for w in writers:
        w.send(img)
  finally:
    for w in writers:
      w.close()
    renderer.close()
  return paths


def _open_writer(path: Path, size: tuple[int, int], fps: float, gif_scale: float):
  """A started ffmpeg encoder (imageio-ffmpeg generator) for .mp4 (H.264) or .gif.

  GIFs get an optimal 256-colour palette for the whole clip (ffmpeg's
  palettegen/paletteuse), no dithering, and are scaled by `gif_scale`.
  """
  import imageio_ffmpeg
  if path.suffix.lower() == ".mp4":
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=7,
        macro_block_size=16, ffmpeg_log_level="error",
        output_params=["-preset", "veryfast"])  # ~3x faster than 'medium', same size here
  else:
    scale = f"scale=trunc(iw*{gif_scale}/2)*2:-2:flags=lanczos,"
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="gif", pix_fmt_out="pal8", macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-vf", scale + "split[a][b];[a]palettegen=stats_mode=full[p];"
                       "[b][p]paletteuse=dither=none", "-loop", "0"])
  writer.send(None)  # start ffmpeg
  return writer


def contact_sheet(video_path: str | os.PathLike | None, keypoints_2d_px, poses_3d,
                  out_path: str | os.PathLike, *, image_size: Sequence[int] | None = None,
                  filled=None, low_confidence=None, num_frames: int = 6, columns: int = 2,
                  height: int = 320, first_frame: int = 0, **view) -> Path:
  """A PNG grid of `num_frames` evenly spaced side-by-side frames (first and last included)."""
  import imageio.v3 as iio3

  kps, poses, mask, low = _check_inputs(keypoints_2d_px, poses_3d, filled, low_confidence)
  out_path = Path(out_path)
  if out_path.suffix.lower() != ".png":
    raise DataError(f"{out_path}: contact sheet must be a .png")
  if image_size is None:
    if video_path is None:
      raise DataError("contact_sheet needs image_size when no video is given")
    image_size = video_info(video_path)["size"]
  t = kps.shape[0]
  picks = np.unique(np.linspace(0, t - 1, min(num_frames, t)).round().astype(int))
  renderer = PoseRenderer(image_size, height=height, **view)
  tiles = []
  try:
    for i, frame in enumerate(_video_frames(video_path, t, renderer.frame_size, image_size,
                                            first_frame)):
      if i in picks:
        tiles.append(renderer.draw(frame, kps[i], poses[i], mask[i],
                                   _label(i, t, mask[i], low[i]), low[i]))
  finally:
    renderer.close()
  rows = -(-len(tiles) // columns)
  th, tw = tiles[0].shape[:2]
  gap = 4
  sheet = np.full((rows * th + (rows - 1) * gap, columns * tw + (columns - 1) * gap, 3), 255,
                  np.uint8)
  for k, tile in enumerate(tiles):
    r, c = divmod(k, columns)
    sheet[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tile
  iio3.imwrite(out_path, sheet)
  return out_path
