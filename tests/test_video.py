"""In-the-wild video: keypoint formats, gap filling, lift(), exports (npz/JSON/BVH), rendering, CLI.

Most tests use a tiny random-weight model (F=9) so they compile and run in
seconds; the real-clip tests use the published 27_3_3 layout with random weights.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import poseformer_jax
from poseformer_jax import config_lib, gaps
from poseformer_jax import model as model_lib
from poseformer_jax.checkpoint import load_checkpoint, save_params
from poseformer_jax.data import cameras, skeleton
from poseformer_jax.errors import DataError
from poseformer_jax.video import bvh, export, figure, formats, render

lift_module = importlib.import_module("poseformer_jax.lift_command.main")  # the command
lift = poseformer_jax.lift

VIDEO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
# name: (video file, frames, (width, height), fps)
REAL_CLIPS = {"skater": ("skater.mp4", 185, (1280, 720), 25.0),
              "ntu_S001C001P001R001A001": ("ntu_S001C001P001R001A001.avi", 103, (1920, 1080), 30.0)}


# --- fixtures -----------------------------------------------------------------------------------

def _write_checkpoint(directory: Path, variant: str, tiny: bool) -> Path:
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  if tiny:
    config.model.num_frames, config.model.kept_frames, config.model.kept_coeffs = 9, 3, 3
    config.model.embed_dim_ratio, config.model.depth, config.model.num_heads = 8, 2, 2
  model = model_lib.from_config(config.model)
  x = jnp.zeros((1, config.model.num_frames, 17, 2))
  # Random weights with the structure `model.init` gives, drawn in numpy: running init itself
  # costs 15-20 s of op-by-op dispatch or compilation on a small CPU.
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
  rng = np.random.default_rng(0)
  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "scale" in name:  # LayerNorm gains
      return np.ones(leaf.shape, np.float32)
    std = 0.0 if "bias" in name else 0.05
    return (rng.normal(0, std, leaf.shape) if std else np.zeros(leaf.shape)).astype(np.float32)
  params = jax.tree_util.tree_map_with_path(draw, shapes)
  return save_params(directory, params, config)


@pytest.fixture(scope="module")
def tiny_ckpt_dir(tmp_path_factory) -> Path:
  """A checkpoint of a tiny random-weight model: F=9, width 8, depth 2."""
  return _write_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "ckpt", "27_3_3", tiny=True)


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_ckpt_dir):
  return load_checkpoint(tiny_ckpt_dir)


def _walk(t: int, seed: int = 0, size=(640, 480)) -> np.ndarray:
  """A smooth random (T, 17, 2) pixel sequence inside the image."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(0.3, 0.7, (1, 17, 2)) * np.array(size)
  return base + np.cumsum(rng.normal(0, 2.0, (t, 17, 2)), axis=0)


# --- formats ------------------------------------------------------------------------------------

def _coco_frame() -> np.ndarray:
  """Hand-made COCO-17 pixels (person facing the camera: their left is image right)."""
  pts = {0: (100, 50), 1: (104, 46), 2: (96, 46), 3: (108, 48), 4: (92, 48),
         5: (120, 80), 6: (80, 80), 7: (130, 110), 8: (70, 110), 9: (135, 140), 10: (65, 140),
         11: (112, 150), 12: (88, 150), 13: (114, 200), 14: (86, 200), 15: (116, 250),
         16: (84, 250)}
  return np.array([pts[i] for i in range(17)], np.float64)


def _check_coco_mapping(h36m: np.ndarray, coco: np.ndarray):
  pairs = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8,
           16: 10}
  for h, c in pairs.items():
    np.testing.assert_allclose(h36m[h], coco[c], err_msg=f"H36M {h} <- COCO {c}")
  np.testing.assert_allclose(h36m[0], (coco[11] + coco[12]) / 2)  # pelvis
  np.testing.assert_allclose(h36m[8], (coco[5] + coco[6]) / 2)  # thorax
  np.testing.assert_allclose(h36m[7], (h36m[0] + h36m[8]) / 2)  # spine
  np.testing.assert_allclose(h36m[10], coco[1] + coco[2] - coco[0])  # head: nose mirrored by eyes
  # Not swapped: the person's left joints are on the image's right (facing the camera).
  assert (h36m[list(skeleton.JOINTS_LEFT), 0] > h36m[list(skeleton.JOINTS_RIGHT), 0]).all()


def test_coco_to_h36m_hand_made():
  coco = _coco_frame()
  _check_coco_mapping(formats.coco_to_h36m(coco), coco)
  # Derived joints go missing with their sources; head falls back to the ears.
  c = coco.copy()
  c[1] = np.nan  # left eye
  c[11] = np.nan  # left hip
  h = formats.coco_to_h36m(c)
  assert np.isnan(h[0]).all() and np.isnan(h[7]).all() and np.isnan(h[4]).all()
  np.testing.assert_allclose(h[10], (coco[3] + coco[4]) / 2)
  assert np.isfinite(h[[1, 2, 3, 8, 9, 11, 14]]).all()


def test_coco17_npz_and_json_agree(tmp_path):
  coco = np.stack([_coco_frame() + i for i in range(4)])
  scores = np.ones((4, 17))
  scores[2, 9] = 0.1  # low-confidence left wrist in frame 2
  np.savez(tmp_path / "k.npz", keypoints=np.concatenate([coco, scores[..., None]], -1),
           width=200, height=300, fps=30.0)
  frames = [np.concatenate([coco[i], scores[i, :, None]], -1).tolist() for i in range(4)]
  frames[3] = None  # no detection
  (tmp_path / "k.json").write_text(json.dumps({"frames": frames, "width": 200, "height": 300}))
  a, size_a, fps_a = formats.load_keypoints(tmp_path / "k.npz", "coco17")
  b, size_b, fps_b = formats.load_keypoints(tmp_path / "k.json", "coco17")
  assert a.shape == (4, 17, 2) and size_a == size_b == (200, 300)
  assert fps_a == 30.0 and fps_b is None
  _check_coco_mapping(a[0], coco[0])
  assert np.isnan(a[2, 13]).all() and np.isfinite(a[2, 12]).all()  # H36M L wrist <- COCO 9
  assert np.isnan(b[3]).all()
  np.testing.assert_array_equal(a[:3], b[:3])
  # a flat 51-number frame (COCO annotation style) reads the same
  (tmp_path / "flat.json").write_text(json.dumps([np.asarray(frames[0]).ravel().tolist()]))
  c, size_c, _ = formats.load_keypoints(tmp_path / "flat.json", "coco17")
  np.testing.assert_array_equal(c[0], a[0])
  assert size_c is None


def test_mediapipe33_mapping(tmp_path):
  t = 3
  mp = np.zeros((t, 33, 2), np.float32)
  coco = _coco_frame()
  for c, m in enumerate(formats.MEDIAPIPE_TO_COCO):
    mp[:, m] = coco[c]
  mp[:, [1, 3, 4, 6, 9, 10] + list(range(17, 23)) + list(range(29, 33))] = -999  # unused points
  vis = np.ones((t, 33), np.float32)
  vis[1, 26] = 0.05  # right knee barely visible in frame 1
  detected = np.array([True, True, False])
  mp[2] = np.nan
  np.savez(tmp_path / "mp.npz", keypoints=mp, visibility=vis, detected=detected, width=200,
           height=300, fps=25.0, layout="mediapipe33")
  h, size, fps = formats.load_keypoints(tmp_path / "mp.npz", "mediapipe33")
  assert size == (200, 300) and fps == 25.0 and h.shape == (t, 17, 2)
  _check_coco_mapping(h[0], coco)
  np.testing.assert_allclose(h[0, 11], mp[0, 11])  # L shoulder <- MediaPipe 11 (odd = left)
  np.testing.assert_allclose(h[0, 16], mp[0, 16])  # R wrist <- MediaPipe 16 (even = right)
  assert np.isnan(h[1, 2]).all() and np.isfinite(h[1, 5]).all()  # R knee missing, L knee kept
  assert np.isnan(h[2]).all()  # not detected
  with pytest.raises(DataError, match="mp.npz.*layout 'mediapipe33'.*coco17"):
    formats.load_keypoints(tmp_path / "mp.npz", "coco17")  # wrong --format


def test_openpose25_folder(tmp_path):
  coco = _coco_frame()
  body = np.zeros((25, 3))
  for c, o in enumerate(formats.OPENPOSE25_TO_COCO):
    body[o] = (*coco[c], 0.9)
  body[1] = (100, 80, 0.9)  # neck, unused
  body[8] = (100, 150, 0.9)  # mid hip, unused
  folder = tmp_path / "op"
  folder.mkdir()
  def write(i, people):
    (folder / f"clip_{i}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
  missing_ankle = body.copy()
  missing_ankle[14] = 0  # OpenPose writes zeros for an undetected joint
  for i in range(11):
    write(i, [] if i == 5 else [{"pose_keypoints_2d": (missing_ankle if i == 10 else body)
                                 .ravel().tolist()}])
  h, size, fps = formats.load_keypoints(folder, "openpose25")
  assert h.shape == (11, 17, 2) and size is None and fps is None
  _check_coco_mapping(h[0], coco)
  np.testing.assert_allclose(h[0, 6], body[14, :2])  # L ankle <- BODY_25 14
  np.testing.assert_allclose(h[0, 14], body[2, :2])  # R shoulder <- BODY_25 2
  assert np.isnan(h[5]).all()  # no person
  assert np.isnan(h[10, 6]).all() and np.isfinite(h[10, 3]).all()  # natural order: 10 is last


def test_h36m17_passthrough(tmp_path):
  x = _walk(6)
  np.savez(tmp_path / "a.npz", keypoints=x)
  np.savez(tmp_path / "b.npz", reconstruction=x[None])  # the upstream demo's keypoints.npz
  for name in ("a.npz", "b.npz"):
    got, size, fps = formats.load_keypoints(tmp_path / name, "h36m17")
    np.testing.assert_array_equal(got, x)
    assert size is None and fps is None


def test_format_errors(tmp_path):
  with pytest.raises(DataError, match="unknown keypoint format"):
    formats.load_keypoints(tmp_path / "x.npz", "coco18")
  with pytest.raises(DataError, match="nope.npz: no such"):
    formats.load_keypoints(tmp_path / "nope.npz", "coco17")
  np.savez(tmp_path / "wrong.npz", keypoints=np.zeros((4, 33, 2)))
  with pytest.raises(DataError, match=r"wrong.npz.*\(4, 33, 2\).*coco17"):
    formats.load_keypoints(tmp_path / "wrong.npz", "coco17")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(DataError, match="bad.json: unreadable JSON"):
    formats.load_keypoints(tmp_path / "bad.json", "coco17")


# --- gaps ---------------------------------------------------------------------------------------

def test_fill_gaps_linear_inside_nearest_at_edges():
  x = np.zeros((8, 17, 2))
  x[:, :, 0] = np.arange(8)[:, None] * 10.0
  x[:, :, 1] = 5.0
  gap = x.copy()
  gap[[0, 1], 3] = np.nan  # leading gap of joint 3
  gap[[4, 5], 3, 0] = np.nan  # interior gap (one coordinate NaN is enough)
  gap[7, 9] = np.nan  # trailing gap of joint 9
  gap[6] = np.nan  # a frame with no detection
  filled, mask = gaps.fill_gaps(gap)
  assert mask.shape == (8, 17) and mask.dtype == bool
  assert mask[[0, 1, 4, 5], 3].all() and mask[7, 9] and mask[6].all()
  assert mask.sum() == 4 + 1 + 17
  np.testing.assert_array_equal(gaps.filled_frames(mask), [0, 1, 4, 5, 6, 7])
  np.testing.assert_allclose(filled[[0, 1], 3], [[20, 5], [20, 5]])  # nearest valid (frame 2)
  np.testing.assert_allclose(filled[[4, 5], 3], x[[4, 5], 3])  # linear inside
  others = [j for j in range(17) if j != 9]
  np.testing.assert_allclose(filled[6, others], x[6, others])  # whole frame from its neighbours
  np.testing.assert_allclose(filled[[6, 7], 9], x[[5, 5], 9])  # joint 9: hold the last valid
  assert "filled 6 of 8 frames" in gaps.describe_filled(mask)


def test_fill_gaps_errors():
  with pytest.raises(DataError, match="no usable frames"):
    gaps.fill_gaps(np.full((5, 17, 2), np.nan), source="clip.npz")
  x = _walk(5)
  x[:, 10] = np.nan
  with pytest.raises(DataError, match="head missing in every frame"):
    gaps.fill_gaps(x, joint_names=skeleton.JOINT_NAMES)


# --- lift ---------------------------------------------------------------------------------------

def _reference_lift(model, params, keypoints_px, size):
  """Independent of Predictor: edge-padded windows, flip average, root zeroed, in numpy."""
  x = cameras.normalize_screen(np.asarray(keypoints_px, np.float64), *size).astype(np.float32)
  pad = (model.num_frames - 1) // 2
  t = len(x)
  idx = np.clip(np.arange(t)[:, None] + np.arange(-pad, pad + 1), 0, t - 1)
  win = x[idx]
  mirrored = win.copy()
  mirrored[..., 0] *= -1
  mirrored = mirrored[:, :, skeleton.flip_permutation(17, skeleton.JOINTS_LEFT,
                                                      skeleton.JOINTS_RIGHT)]
  apply = jax.jit(lambda v: model.apply({"params": params}, v))
  y = np.array(apply(win))[:, 0]
  ym = np.array(apply(mirrored))[:, 0]
  ym[..., 0] *= -1
  ym = ym[:, skeleton.flip_permutation(17, skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)]
  out = (y + ym) / 2
  out[:, 0] = 0
  return out


def test_lift_clip_shorter_than_receptive_field(tiny_ckpt):
  model, params, _ = tiny_ckpt
  assert model.num_frames == 9
  for t in (1, 4):
    kps = _walk(t, seed=t)
    got = lift(kps, (640, 480), checkpoint=tiny_ckpt)
    assert got.shape == (t, 17, 3) and got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, _reference_lift(model, params, kps, (640, 480)), atol=2e-5)
    assert (got[:, 0] == 0).all()


def test_lift_from_directory_matches_triple(tiny_ckpt_dir, tiny_ckpt):
  kps = _walk(12, seed=3)
  a = lift(kps, (640, 480), checkpoint=str(tiny_ckpt_dir))
  b = lift(kps, (640, 480), checkpoint=tiny_ckpt)
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_lift_whole_equals_chunked(tiny_ckpt):
  """Chunks carry pad = (F-1)//2 frames of context on each side, so every frame sees the same
  window as in the whole clip (edge padding only at the clip's real ends): same output."""
  kps = _walk(40, seed=1)
  whole = lift(kps, (640, 480), checkpoint=tiny_ckpt)
  # Chunks run other batch shapes (`Predictor.batch_for` sizes each call to its frames),
  # which XLA compiles to differently ordered float sums: equal up to rounding.
  for chunk in (1, 16, 39):
    chunked = lift(kps, (640, 480), checkpoint=tiny_ckpt, chunk_size=chunk)
    np.testing.assert_allclose(chunked, whole, atol=1e-5, rtol=0, err_msg=f"chunk_size={chunk}")
  # The same frames lifted as a separate clip differ near its cut ends: context matters.
  part = lift(kps[10:30], (640, 480), checkpoint=tiny_ckpt)
  assert np.abs(part[0] - whole[10]).max() > 1e-4
  # Beyond pad = 4 the windows are the same; the batch shapes (24 vs 40) are not: rounding.
  np.testing.assert_allclose(part[4:-4], whole[14:26], atol=1e-5, rtol=0)


def test_lift_fills_nan_gaps(tiny_ckpt):
  kps = _walk(16, seed=2)
  holes = kps.copy()
  holes[3:6] = np.nan
  holes[9, 4] = np.nan
  filled, _ = gaps.fill_gaps(holes)
  np.testing.assert_allclose(lift(holes, (640, 480), checkpoint=tiny_ckpt),
                             lift(filled, (640, 480), checkpoint=tiny_ckpt), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=(0, 480)), "image size must be positive"),
    (dict(image_size=(640, -1)), "image size must be positive"),
    (dict(image_size="big"), "image_size must be"),
    (dict(keypoints_2d=np.zeros((5, 17, 3))), r"shape \(T, 17, 2\)"),
    (dict(keypoints_2d=np.zeros((0, 17, 2))), r"shape \(T, 17, 2\)"),
    (dict(keypoints_2d=np.full((5, 17, 2), np.nan)), "no usable frames"),
    (dict(keypoints_2d=np.full((5, 17, 2), np.inf)), "infinite"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(checkpoint=42), "checkpoint must be"),
])
def test_lift_errors(tiny_ckpt, kwargs, match):
  args = dict(keypoints_2d=_walk(5), image_size=(640, 480), checkpoint=tiny_ckpt)
  args.update(kwargs)
  with pytest.raises(DataError, match=match):
    lift(args.pop("keypoints_2d"), args.pop("image_size"), **args)


def test_package_import_stays_light():
  """``import poseformer_jax`` and the lift command's module load no JAX; the public names
  load their modules on first use."""
  import subprocess
  import sys
  heavy = "sorted(m for m in ('jax', 'flax', 'matplotlib') if m in sys.modules)"
  code = (f"import sys, poseformer_jax, poseformer_jax.lift_command.main; print({heavy}); "
          f"print(callable(poseformer_jax.lift), poseformer_jax.Lifter.__module__, {heavy})")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=Path(__file__).resolve().parents[1])
  assert out.stdout.splitlines() == ["[]", "True poseformer_jax.lifter ['flax', 'jax']"]


# --- exports ------------------------------------------------------------------------------------

def _rigid_motion(t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Poses with the same bone lengths in every frame: random bone directions, moving root."""
  rng = np.random.default_rng(seed)
  lengths = rng.uniform(0.1, 0.45, 17)
  p = np.zeros((t, 17, 3))
  p[:, 0] = np.cumsum(rng.normal(0, 0.02, (t, 3)), 0)
  for j in range(1, 17):
    d = rng.normal(size=(t, 3))
    p[:, j] = p[:, skeleton.PARENTS[j]] + lengths[j] * d / np.linalg.norm(d, axis=1, keepdims=True)
  # Awkward cases: frame 0 exactly the rest (T-)pose, frame 1 with bones opposite to it.
  for k, sign in ((0, 1.0), (1, -1.0)):
    for j in range(1, 17):
      rest = np.asarray(bvh._REST_DIR[j], float) @ bvh._CAM_TO_BVH
      p[k, j] = p[k, skeleton.PARENTS[j]] + sign * lengths[j] * rest
  return p, lengths


def test_bvh_round_trip(tmp_path):
  poses, lengths = _rigid_motion(60)
  bvh.write_bvh(tmp_path / "a.bvh", poses, fps=30)
  back = bvh.read_bvh_positions(tmp_path / "a.bvh")
  assert back.shape == poses.shape
  assert np.abs(back - poses).max() < 1e-4
  text = (tmp_path / "a.bvh").read_text()
  assert text.startswith("HIERARCHY\nROOT pelvis\n")
  assert "Frames: 60\nFrame Time: 0.03333333" in text
  names, _, frame_time = bvh.read_bvh(tmp_path / "a.bvh")
  assert set(skeleton.JOINT_NAMES) <= set(names) and len(names) == 17 + 6  # 6 helper joints
  # in centimetres
  bvh.write_bvh(tmp_path / "cm.bvh", poses, fps=30, scale=100)
  np.testing.assert_allclose(bvh.read_bvh_positions(tmp_path / "cm.bvh", scale=100), poses,
                             atol=1e-4)


def test_bvh_varying_bone_lengths_keep_directions(tmp_path):
  poses, _ = _rigid_motion(20, seed=1)
  rng = np.random.default_rng(5)
  stretched = poses.copy()
  for j in range(1, 17):  # lengths vary by up to 10% per frame
    par = skeleton.PARENTS[j]
    bone = poses[:, j] - poses[:, par]
    stretched[:, j] = stretched[:, par] + bone * rng.uniform(0.9, 1.1, (20, 1))
  bvh.write_bvh(tmp_path / "s.bvh", stretched, fps=25)
  back = bvh.read_bvh_positions(tmp_path / "s.bvh")
  par = list(skeleton.PARENTS[1:])
  unit = lambda b: b / np.linalg.norm(b, axis=-1, keepdims=True)  # noqa: E731
  np.testing.assert_allclose(unit(back[:, 1:] - back[:, par]),
                             unit(stretched[:, 1:] - stretched[:, par]), atol=1e-5)
  lengths = np.linalg.norm(back[:, 1:] - back[:, par], axis=-1)
  np.testing.assert_allclose(lengths, np.broadcast_to(bvh.bone_lengths(stretched)[1:],
                                                      lengths.shape), atol=1e-5)


def test_npz_and_json_exports(tmp_path):
  poses, _ = _rigid_motion(5)
  kps = _walk(5)
  mask = np.zeros((5, 17), bool)
  mask[2, 3] = True
  export.save_npz(tmp_path / "o.npz", poses, kps, mask, fps=25.0, image_size=(640, 480))
  export.save_json(tmp_path / "o.json", poses, kps, mask, fps=25.0, image_size=(640, 480))
  with np.load(tmp_path / "o.npz") as f:
    np.testing.assert_allclose(f["poses_3d"], poses, atol=1e-6)
    np.testing.assert_allclose(f["keypoints_2d"], kps, atol=1e-3)
    np.testing.assert_array_equal(f["filled"], mask)
    assert f["fps"] == 25.0 and f["image_size"].tolist() == [640, 480]
    assert tuple(f["joint_names"]) == skeleton.JOINT_NAMES
  doc = json.loads((tmp_path / "o.json").read_text())
  assert doc["joint_names"] == list(skeleton.JOINT_NAMES) and len(doc["frames"]) == 5
  np.testing.assert_allclose(doc["frames"][4]["pose_3d"], poses[4], atol=1e-6)
  assert doc["frames"][2]["filled_joints"] == [3]


# --- rendering ----------------------------------------------------------------------------------

def test_renderer_places_2d_skeleton_on_image_pixels():
  """A bone drawn on the blank canvas lands where its pixels are (scaled to the panel)."""
  size = (640, 480)
  r = figure.PoseRenderer(size, height=240)
  kps = np.full((17, 2), np.nan)  # not drawn
  kps[[11, 12]] = [[100, 100], [300, 100]]  # left upper arm, horizontal
  kps[[14, 15]] = [[100, 300], [300, 300]]  # right upper arm
  img = r.draw(None, kps, np.zeros((17, 3)))
  assert img.shape == (240, r.width, 3) and img.dtype == np.uint8
  scale = r.height / size[1]
  def colour(x, y):
    return img[int(round(y * scale)), int(round(x * scale))].astype(int)
  blue, red = np.array([0x1f, 0x6f, 0xd1]), np.array([0xe0, 0x30, 0x2a])
  assert np.abs(colour(200, 100) - blue).max() < 40
  assert np.abs(colour(200, 300) - red).max() < 40
  assert (colour(200, 200) == figure._BLANK).all()
  # 3D: camera y points down, the plot's third axis up.
  up = figure.to_plot(np.array([[0.0, -1.0, 0.0]]))
  assert up[0, 2] == 1.0


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # our read-back starts ffmpeg
def test_render_video_blank_canvas_mp4_gif_and_sheet(tmp_path):
  import imageio.v3 as iio
  t = 6
  kps = _walk(t)
  poses, _ = _rigid_motion(t)
  out = render.render_video(None, kps, poses, [tmp_path / "r.mp4", tmp_path / "r.gif"], fps=10,
                            image_size=(640, 480), height=160, progress=False)
  assert [p.name for p in out] == ["r.mp4", "r.gif"]
  frames = iio.imread(tmp_path / "r.gif", index=None)
  assert frames.shape[0] == t
  import imageio.v2 as iio2
  reader = iio2.get_reader(tmp_path / "r.mp4", format="FFMPEG")
  assert sum(1 for _ in reader) == t
  reader.close()
  render.contact_sheet(None, kps, poses, tmp_path / "s.png", image_size=(640, 480), height=96)
  sheet = iio.imread(tmp_path / "s.png")
  assert sheet.shape[0] > 96 * 3 and sheet.std() > 5
  with pytest.raises(DataError, match="use .mp4 or .gif"):
    render.render_video(None, kps, poses, tmp_path / "r.avi", fps=10, image_size=(640, 480))


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # our read-back starts ffmpeg
def test_several_people_in_one_render(tmp_path):
  """Two people with overlapping frames: one video from the first's first frame to the
  second's last, both skeletons drawn where their pixels are, 3D roots in a row."""
  import imageio.v2 as iio2
  size = (640, 480)
  person = formats.coco_to_h36m(_coco_frame())  # a person facing the camera, x 65-135 px
  a = np.stack([person + [60 + i, 150] for i in range(6)])  # on the left of the image
  b = np.stack([person + [360 - i, 150] for i in range(7)])  # on the right
  poses = _rigid_motion(7)[0]
  people = [dict(track="7", frames=np.arange(0, 6), keypoints_2d=a, poses_3d=poses[:6]),
            dict(track="2", frames=np.arange(3, 10), keypoints_2d=b, poses_3d=poses)]
  where = render.offsets(people)
  assert where[0][0, 0] == -0.5 and where[1][0, 0] == 0.5  # left to right as in the image
  assert render.offsets(people[:1])[0].max() == 0.0  # one person: centred
  out = render.render_people(None, people, tmp_path / "two.mp4", fps=10, image_size=size,
                             height=240, progress=False)
  reader = iio2.get_reader(out[0], format="FFMPEG")
  frames = [f for f in reader]
  reader.close()
  assert len(frames) == 10
  r = figure.PoseRenderer(size, people=2, height=240)
  img = r.draw_people(None, [figure.Drawn(a[4], poses[4], label="7"),
                             figure.Drawn(b[1], poses[1], label="2", offset=(0.5, 0, 0))])
  scale = r.height / size[1]
  for kps in (a[4], b[1]):  # a pixel on each person's left forearm is the left colour
    x, y = (kps[12] + kps[13]) / 2 * scale
    assert np.abs(img[int(round(y)), int(round(x))].astype(int) - [0x1f, 0x6f, 0xd1]).max() < 60
  with pytest.raises(DataError, match="room for 2"):
    r.draw_people(None, [figure.Drawn(a[0], poses[0])] * 3)


# --- CLI ----------------------------------------------------------------------------------------

def _coco_file(path: Path, t: int = 10):
  coco = np.stack([_coco_frame() + 3 * i for i in range(t)])
  scores = np.ones((t, 17))
  scores[4] = 0  # no person in frame 4
  np.savez(path, keypoints=coco, scores=scores, width=320, height=320, fps=20.0)
  return path


def test_cli_end_to_end(tmp_path, tiny_ckpt_dir, capsys):
  kp = _coco_file(tmp_path / "k.npz")
  args = ["--keypoints", str(kp), "--format", "coco17", "--checkpoint", str(tiny_ckpt_dir),
          "--output", str(tmp_path / "o.npz"), "--json", str(tmp_path / "o.json"),
          "--bvh", str(tmp_path / "o.bvh"), "--no-progress"]
  assert lift_module.main(args) == 0
  out = capsys.readouterr().out
  assert "filled 1 of 10 frames" in out and "frames 4" in out
  with np.load(tmp_path / "o.npz") as f:
    assert f["poses_3d"].shape == (10, 17, 3) and f["filled"][4].all() and f["fps"] == 20.0
  assert bvh.read_bvh_positions(tmp_path / "o.bvh").shape == (10, 17, 3)
  # Existing outputs are kept unless --overwrite.
  before = (tmp_path / "o.npz").read_bytes()
  assert lift_module.main(args) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "already exists (pass --overwrite" in err
  assert (tmp_path / "o.npz").read_bytes() == before
  assert lift_module.main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("extra, match", [
    (["--image-size", "0,320"], "image size must be positive"),
    (["--format", "mediapipe33"], "keypoints have shape"),
    (["--render", "x.avi"], "--render .*x.avi: must end with .mp4 or .gif"),
    (["--keypoints", "missing.npz"], "missing.npz: no such keypoint file"),
])
def test_cli_one_line_errors(tmp_path, tiny_ckpt_dir, capsys, monkeypatch, extra, match):
  monkeypatch.chdir(tmp_path)
  kp = _coco_file(tmp_path / "k.npz")
  args = ["--keypoints", str(kp), "--format", "coco17", "--checkpoint", str(tiny_ckpt_dir),
          "--output", "o.npz"] + extra
  assert lift_module.main(args) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: ")
  assert __import__("re").search(match, err), err
  assert not (tmp_path / "o.npz").exists()
  # --verbose shows the traceback instead
  with pytest.raises(DataError):
    lift_module.main(args + ["--verbose"])


def test_cli_flag_errors_are_one_line(capsys):
  for argv, needle in [
      (["--keypoints", "k.npz", "--format", "yolo", "--output", "o.npz"],
       "flag --format=yolo: value should be one of <coco17|mediapipe33|openpose25|h36m17>"),
      (["k.npz", "--bogus"], "Unknown command line flag 'bogus'"),
      (["--batch-size=x", "k.npz"], "flag --batch-size=x"),
      (["--image-size=12", "k.npz"], "--image-size must be W,H"),
      (["a.npz", "b.npz"], "one INPUT expected"),
      ([], "give a VIDEO, a keypoint file"),
  ]:
    assert lift_module.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, (argv, err)
  assert lift_module.main(["--help"]) == 0
  assert "poseformer-jax lift VIDEO --render out.mp4" in capsys.readouterr().out


# --- real clips ---------------------------------------------------------------------------------

needs_videos = pytest.mark.skipif(not VIDEO_DIR.is_dir(),
                                  reason=f"real clips not found at {VIDEO_DIR}")


@pytest.mark.real_data
@needs_videos
def test_examples_are_the_shared_detections():
  for name in REAL_CLIPS:
    ours = Path(__file__).resolve().parents[1] / "examples" / f"{name}_mediapipe33.npz"
    assert ours.read_bytes() == (VIDEO_DIR / f"{name}_mediapipe33.npz").read_bytes()


@pytest.mark.slow
@pytest.mark.real_data
@needs_videos
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # our read-back starts ffmpeg
def test_real_clips_end_to_end(tmp_path_factory, capsys):
  """Both MediaPipe clips through the CLI with a random-weight 27_3_3 model, rendered over the
  real videos (mp4 + gif + contact sheet)."""
  import imageio.v2 as iio2
  import imageio.v3 as iio3
  tmp = tmp_path_factory.mktemp("real")
  ckpt = _write_checkpoint(tmp / "ckpt", "27_3_3", tiny=False)
  for name, (video, frames, size, fps) in REAL_CLIPS.items():
    out = tmp / name
    out.mkdir()
    args = ["--keypoints", str(VIDEO_DIR / f"{name}_mediapipe33.npz"), "--format", "mediapipe33",
            "--checkpoint", str(ckpt), "--output", str(out / "o.npz"),
            "--json", str(out / "o.json"), "--bvh", str(out / "o.bvh"),
            "--video", str(VIDEO_DIR / video), "--render", str(out / "o.mp4"),
            "--gif", str(out / "o.gif"), "--contact-sheet", str(out / "o.png"), "--no-progress"]
    assert lift_module.main(args) == 0, capsys.readouterr().err
    with np.load(out / "o.npz") as f:
      assert f["poses_3d"].shape == (frames, 17, 3) and np.isfinite(f["poses_3d"]).all()
      assert f["keypoints_2d"].shape == (frames, 17, 2) and np.isfinite(f["keypoints_2d"]).all()
      assert tuple(f["image_size"]) == size and f["fps"] == fps
      assert (f["poses_3d"][:, 0] == 0).all()
    assert bvh.read_bvh_positions(out / "o.bvh").shape == (frames, 17, 3)
    reader = iio2.get_reader(out / "o.mp4", format="FFMPEG")
    h, w = reader.get_meta_data()["size"][::-1]
    assert sum(1 for _ in reader) == frames and h == 480
    reader.close()
    assert iio3.imread(out / "o.gif", index=None).shape[0] == frames
    sheet = iio3.imread(out / "o.png")
    assert sheet.ndim == 3 and sheet.std() > 10
