"""One side-by-side frame of lifted poses, drawn by matplotlib: `PoseRenderer`.

On the left the input video frame (or a blank canvas of the image size) with
each person's 2D skeleton; on the right their 3D skeletons. Left limbs are
blue, right limbs red, the trunk grey (the person's left/right); interpolated
2D joints are drawn hollow, joints lifted from the detector's low-confidence
estimate pale; several people carry their track id by the head, in both panels.

The 3D view: the model's camera-space pose (x right, y down, z forward),
shown with y up and seen from slightly above and to the side of the camera
(``elev=15, azim=-70``; ``azim=-90, elev=0`` is exactly the camera's view),
fixed axis limits of +-``radius`` metres so motion is comparable across
frames. Each person's root is drawn at their ``offset`` (camera-space metres;
0 is the centre). With a root trajectory a `scene.Scene` sets the limits around the
whole path, draws the floor grid, and each person's root trail runs on the floor.

Speed: the static parts (3D box, grid, labels) are drawn once and kept as a
background; per frame the background is restored, the video frame is pasted
into the left panel's pixels and only the skeleton artists are drawn
(blitting), then the canvas's RGBA buffer is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video.formats import H36M_LEFT, H36M_PARENTS, H36M_RIGHT
from poseformer_jax.video.scene import Scene, to_plot

LEFT_COLOUR = "#1f6fd1"
RIGHT_COLOUR = "#e0302a"
CENTRE_COLOUR = "#505050"
TRAIL_COLOUR = "#2a9d5c"
BONES = tuple((p, c) for c, p in enumerate(H36M_PARENTS) if p >= 0)
HEAD = 10
_BLANK = 235  # grey level of the blank canvas


def bone_colour(child: int) -> str:
  """The colour of the bone ending at joint `child` (and of that joint)."""
  if child in H36M_LEFT:
    return LEFT_COLOUR
  if child in H36M_RIGHT:
    return RIGHT_COLOUR
  return CENTRE_COLOUR


@dataclass
class Drawn:
  """One person in one frame.

  keypoints_2d: (17, 2) pixels of the input image.
  pose_3d: (17, 3) camera space, metres (drawn root-relative, at `offset`).
  filled, low_confidence: (17,) bool or None (joints drawn hollow / pale).
  offset: (3,) camera-space metres where the root is drawn.
  label: text by the head ("" for none).
  trail: (K, 3) camera-space roots so far (drawn on the floor of a scene), or None.
  """
  keypoints_2d: np.ndarray
  pose_3d: np.ndarray
  filled: np.ndarray | None = None
  low_confidence: np.ndarray | None = None
  offset: tuple = (0.0, 0.0, 0.0)
  label: str = ""
  trail: np.ndarray | None = None


class PoseRenderer:
  """Draws one side-by-side frame at a time into a reused matplotlib figure.

  Args:
    image_size: (width, height) of the input video / keypoint pixel space.
    people: the most people drawn in one frame.
    height: output height in pixels (a multiple of 16 keeps ffmpeg happy);
      the left panel keeps the image's aspect ratio, the right one is square.
    elev, azim: 3D view angles (degrees), see the module doc.
    radius: half extent of the 3D axes, metres.
    scene: a `scene.Scene` (people moving through camera space): its limits and floor.
  """

  def __init__(self, image_size: Sequence[int], *, people: int = 1, height: int = 480,
               elev: float = 15.0, azim: float = -70.0, radius: float = 1.0,
               scene: Scene | None = None):
    self.scene = scene
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
      self.fig = Figure(figsize=(self.width / dpi, self.height / dpi), dpi=dpi,
                        facecolor="white")
      self.canvas = FigureCanvasAgg(self.fig)
      self.ax_2d = self._panel_2d(w, h)
      self.ax_3d = self._panel_3d(elev, azim, radius)
      self._face = np.array([matplotlib.colors.to_rgba(bone_colour(j)) for j in range(17)])
      self.slots = [self._slot() for _ in range(max(1, int(people)))]
      self.caption = self.ax_2d.text(0.01, 0.99, "", transform=self.ax_2d.transAxes, va="top",
                                     ha="left", color="white", fontsize=9,
                                     bbox=dict(facecolor="black", alpha=0.55, pad=2,
                                               edgecolor="none"))
    # Blitting: the static parts once as a background; per frame only the artists.
    self.caption.set_animated(True)
    for slot in self.slots:
      for a in [*slot["2d"], *slot["3d"]]:
        a.set_animated(True)
    self.canvas.draw()
    self._background = self.canvas.copy_from_bbox(self.fig.bbox)

  def _panel_2d(self, w: int, h: int):
    ax = self.fig.add_axes((0, 0, self.left_width / self.width, 1))
    ax.set_axis_off()
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    return ax

  def _panel_3d(self, elev: float, azim: float, radius: float):
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  registers the '3d' projection
    ax3 = self.fig.add_axes((self.left_width / self.width, 0, self.right_width / self.width, 1),
                            projection="3d")
    ax3.view_init(elev=elev, azim=azim)
    centre = np.zeros(3) if self.scene is None else self.scene.centre
    radius = radius if self.scene is None else self.scene.radius
    for set_lim, c in zip((ax3.set_xlim, ax3.set_ylim, ax3.set_zlim), centre):
      set_lim(c - radius, c + radius)
    for a, b in ([] if self.scene is None else self.scene.grid):  # static: the background
      ax3.plot(*zip(a, b), "-", lw=0.6, color="#9a9a9a")
    ax3.set_box_aspect((1, 1, 1), zoom=1.1)
    ax3.set_xlabel("x (right)", labelpad=-12)
    ax3.set_ylabel("depth", labelpad=-12)
    ax3.set_zlabel("up", labelpad=-12)
    for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
      axis.set_ticklabels([])
    return ax3

  def _slot(self) -> dict:
    """The artists of one person: 2D bones, joints and id label; 3D bones and id label."""
    ax, ax3 = self.ax_2d, self.ax_3d
    lines = [ax.plot([], [], "-", lw=2.5, color=bone_colour(c), zorder=2,
                     solid_capstyle="round")[0] for _, c in BONES]
    points = ax.scatter(np.zeros(17), np.zeros(17), s=14, zorder=3, facecolors=self._face,
                        edgecolors="white", linewidths=0.6)
    label = ax.text(0, 0, "", color="white", fontsize=8, ha="center", va="bottom", zorder=4,
                    bbox=dict(facecolor="black", alpha=0.55, pad=1, edgecolor="none"))
    lines_3d = [ax3.plot([0, 0], [0, 0], [0, 0], "-", lw=2.5, color=bone_colour(c))[0]
                for _, c in BONES]
    for line in lines_3d:  # poses beyond +-radius stay inside the right panel
      line.set_clip_box(ax3.bbox)
      line.set_clip_on(True)
    label_3d = ax3.text(0, 0, 0, "", color="black", fontsize=8, ha="center")
    trail = ax3.plot([], [], [], "-", lw=1.5, color=TRAIL_COLOUR)[0]
    return {"2d": [*lines, points, label], "3d": [*lines_3d, label_3d, trail], "lines": lines,
            "points": points, "label": label, "lines_3d": lines_3d, "label_3d": label_3d,
            "trail": trail}

  def draw(self, frame: np.ndarray | None, keypoints_2d: np.ndarray, pose_3d: np.ndarray,
           filled: np.ndarray | None = None, label: str = "",
           low_confidence: np.ndarray | None = None) -> np.ndarray:
    """One person's frame (`draw_people` with one `Drawn`); `label` is the caption."""
    return self.draw_people(frame, [Drawn(keypoints_2d, pose_3d, filled, low_confidence)],
                            caption=label)

  def draw_people(self, frame: np.ndarray | None, people: Sequence[Drawn],
                  caption: str = "") -> np.ndarray:
    """One output frame as (height, width, 3) uint8.

    frame: (h', w', 3) uint8 RGB, ideally already (height, left_width) (see
    `frame_size`; other sizes are resized), or RGBA of that size; None draws the blank
    canvas. people: at most `people` (the constructor's) `Drawn`; caption: text in the
    top left corner.
    """
    return self.draw_rgba(frame, people, caption)[..., :3].copy()

  def draw_rgba(self, frame: np.ndarray | None, people: Sequence[Drawn],
                caption: str = "") -> np.ndarray:
    """`draw_people`'s frame as the canvas's own (height, width, 4) uint8 RGBA buffer (valid
    until the next draw): a video encoder takes it as it is. An RGBA `frame` of
    `frame_size` is pasted row by row: no per-pixel reshuffling of bytes on the way in
    or out (those strided copies cost more than drawing the skeletons)."""
    if len(people) > len(self.slots):
      raise DataError(f"{len(people)} people in one frame; the renderer has room for "
                      f"{len(self.slots)}")
    for slot, person in zip(self.slots, [*people, *[None] * (len(self.slots) - len(people))]):
      self._pose(slot, person)
    self.caption.set_text(caption)
    self.caption.set_visible(bool(caption))
    self.canvas.restore_region(self._background)
    buf = np.asarray(self.canvas.buffer_rgba())
    left = buf[:, :self.left_width]
    frame = None if frame is None else np.asarray(frame, np.uint8)
    if frame is None:
      left[...] = (_BLANK, _BLANK, _BLANK, 255)
    elif frame.shape == (self.height, self.left_width, 4):  # opaque (`ffmpeg.frames_at`)
      left[...] = frame
    else:
      left[..., :3] = self._fit(frame[..., :3])
      left[..., 3] = 255
    for slot in self.slots:
      for a in slot["2d"]:
        self.ax_2d.draw_artist(a)
      for a in slot["3d"]:
        self.ax_3d.draw_artist(a)
    self.ax_2d.draw_artist(self.caption)
    return buf

  def _pose(self, slot: dict, person: Drawn | None) -> None:
    """Puts one person's pose into a slot's artists (hides them for None)."""
    for a in [*slot["2d"], *slot["3d"]]:
      a.set_visible(person is not None)
    if person is None:
      return
    kp = np.asarray(person.keypoints_2d, np.float64)
    for line, (a, b) in zip(slot["lines"], BONES):
      line.set_data(kp[[a, b], 0], kp[[a, b], 1])
    slot["points"].set_offsets(kp)
    face = self._face.copy()
    if person.low_confidence is not None:
      face[np.asarray(person.low_confidence, bool), 3] = 0.35
    if person.filled is not None:
      face[np.asarray(person.filled, bool)] = (1, 1, 1, 0)
    slot["points"].set_facecolors(face)
    pose = np.asarray(person.pose_3d, np.float64)
    p = to_plot(pose - pose[:1] + np.asarray(person.offset, np.float64))
    has_trail = self.scene is not None and person.trail is not None and len(person.trail) > 0
    if has_trail:
      slot["trail"].set_data_3d(*self.scene.on_floor(person.trail).T)
    slot["trail"].set_visible(has_trail)
    for line, (a, b) in zip(slot["lines_3d"], BONES):
      line.set_data_3d(p[[a, b], 0], p[[a, b], 1], p[[a, b], 2])
    slot["label"].set_text(person.label)
    slot["label"].set_position((kp[HEAD, 0], kp[HEAD, 1] - 0.03 * self.image_size[1]))
    slot["label_3d"].set_text(person.label)
    slot["label_3d"].set_position_3d((p[HEAD, 0], p[HEAD, 1], p[HEAD, 2] + 0.12))
    for a in (slot["label"], slot["label_3d"]):
      a.set_visible(bool(person.label))

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
