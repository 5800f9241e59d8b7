"""The root trajectory in every lifting output: `Lifter.roots`, streaming, the command's npz,
JSON, BVH and render, --focal/--fov/--height, and the floor the renderer draws.

A random-weight F=9 pose model with a random-weight F=9 trajectory model as its
``trajectory/`` (what a shipped model with a trajectory looks like) keeps compiling short.
"""

from __future__ import annotations

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import architectures, checkpoint, config_lib, trajectory
from poseformer_jax.data import skeleton
from poseformer_jax.lifter import Lifter, focal_px_for
from poseformer_jax.stream import StreamingLifter
from poseformer_jax.video import bvh, scene
from test_lift_wild import write_checkpoint

lift_module = importlib.import_module("poseformer_jax.lift_command.main")
SIZE = (640, 480)
FOCAL = 500.0


def _trajectory_params(num_frames: int):
  cfg = config_lib.base_config()
  cfg.model.kind = "trajectory"
  cfg.model.num_frames, cfg.model.kept_frames, cfg.model.kept_coeffs = num_frames, 1, 3
  cfg.model.embed_dim_ratio, cfg.model.depth, cfg.model.num_heads = 4, 1, 2
  cfg.model.root_joint = 0
  model = architectures.from_config(cfg.model)
  params = model.init(jax.random.PRNGKey(5), jnp.zeros((1, num_frames, 17, 2)))["params"]
  params = jax.tree.map(lambda x: x + 0.05 * jnp.sin(jnp.arange(x.size).reshape(x.shape)),
                        params)
  return cfg, model, params


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  root = write_checkpoint(tmp_path_factory.mktemp("bundle") / "ckpt", num_frames=9)
  cfg, _, params = _trajectory_params(9)
  checkpoint.save_params(root / checkpoint.TRAJECTORY_DIR, params, cfg)
  return root


@pytest.fixture(scope="module")
def lifter(bundle):
  return Lifter(str(bundle))


def _walk(t: int) -> np.ndarray:
  """(T, 17, 3) camera-frame metres: a body walking across at 4-5 m."""
  rng = np.random.default_rng(0)
  body = rng.normal(0, 0.25, (17, 3)) * np.array([1, 2.5, 0.5])
  body[0] = 0
  path = np.stack([np.linspace(-1, 1, t), np.full(t, 0.4), np.linspace(4.0, 5.0, t)], -1)
  return body[None] + path[:, None] + 0.01 * rng.standard_normal((t, 17, 3))


def _pixels(points, focal, size):
  return points[..., :2] / points[..., 2:] * focal + np.asarray(size) / 2


def _manual_roots(lifter_obj, rays):
  """Edge-padded windows, the trajectory model on them and on their mirror (x negated back)."""
  model, params, _ = lifter_obj.trajectory
  pad, t = lifter_obj.pad, len(rays)
  idx = np.clip(np.arange(t)[:, None] + np.arange(-pad, pad + 1), 0, t - 1)
  x = jnp.asarray(rays[idx], jnp.float32)
  plain = model.apply({"params": params}, x)[:, 0, 0]
  mirrored = model.apply({"params": params}, skeleton.flip_2d(x))[:, 0, 0] * jnp.array([-1, 1, 1])
  return np.asarray((plain + mirrored) / 2)


def test_roots_are_the_trajectory_model_on_rays(lifter):
  walk = _walk(20)
  kps = _pixels(walk, FOCAL, SIZE)
  roots = lifter.roots(kps, SIZE, focal_px=FOCAL)
  rays = (kps - np.asarray(SIZE) / 2) / FOCAL
  # The driver runs the CPU forms of the attention (same values to float32 rounding, which
  # exp(log depth) / 2D size turns into ~1e-5 of the depth).
  np.testing.assert_allclose(roots, _manual_roots(lifter, rays), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(lifter.roots(kps, SIZE, focal_px=FOCAL, chunk_size=6), roots,
                             atol=1e-5)
  assert lifter.has_trajectory and not Lifter(lifter.model and (lifter.model, lifter.params,
                                                                lifter.config)).has_trajectory


def test_two_cameras_give_the_same_metric_trajectory(lifter):
  """The same motion seen by a 640x480 camera with f = 500 px and a 1920x1080 one with
  f = 1400 px: the command's inputs differ, the roots agree to 1e-5 m (float32 rays)."""
  walk = _walk(20)
  a = lifter.roots(_pixels(walk, 500.0, (640, 480)), (640, 480), focal_px=500.0)
  b = lifter.roots(_pixels(walk, 1400.0, (1920, 1080)), (1920, 1080), focal_px=1400.0)
  np.testing.assert_allclose(a, b, atol=1e-5)
  c = lifter.roots(_pixels(walk, 1400.0, (1920, 1080)), (1920, 1080), focal_px=700.0)
  assert np.abs(c - b).max() > 0.1  # a wrong focal length moves the person


def test_focal_px_for():
  assert focal_px_for((1000, 800), 1234.0) == 1234.0
  assert focal_px_for((1000, 800), fov_deg=90.0) == pytest.approx(500.0)
  assert focal_px_for((1000, 800)) == pytest.approx(trajectory.focal_from_fov(
      1000, trajectory.DEFAULT_FOV_DEG))
  for bad in (dict(focal_px=-1.0), dict(fov_deg=0.5), dict(fov_deg=179.0)):
    with pytest.raises(Exception, match="focal|field of view"):
      focal_px_for((1000, 800), **bad)


def test_streaming_roots_equal_offline(lifter):
  walk = _walk(15)
  kps = _pixels(walk, FOCAL, SIZE)
  offline = lifter.roots(kps, SIZE, focal_px=FOCAL)
  stream = StreamingLifter(lifter, SIZE, record=True, focal_px=FOCAL)
  got = []
  for row in kps:
    if stream.push(row) is not None:
      assert stream.last_roots.shape == (1, 3)
      got.append(stream.last_roots)
  stream.flush()
  got.append(stream.last_roots)
  np.testing.assert_allclose(np.concatenate(got), offline, atol=1e-5)
  np.testing.assert_allclose(np.stack(stream.history["root_3d"]), offline, atol=1e-5)


def _keypoint_file(path, kps):
  scores = np.full(kps.shape[:2], 0.9)
  np.savez(path, keypoints=np.concatenate([kps, scores[..., None]], -1), width=SIZE[0],
           height=SIZE[1], fps=25.0)
  return path


def _run(*args) -> int:
  return lift_module.main([*map(str, args), "--no-progress"])


def test_command_writes_the_trajectory_everywhere(lifter, bundle, tmp_path, capsys):
  walk = _walk(16)
  kp = _keypoint_file(tmp_path / "k.npz", _pixels(walk, FOCAL, SIZE))
  out = tmp_path / "o.npz"
  args = [kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={out}",
          f"--json={tmp_path / 'o.json'}", f"--bvh={tmp_path / 'o.bvh'}"]
  assert _run(*args, f"--focal={FOCAL}") == 0
  assert "no --focal" not in capsys.readouterr().err
  with np.load(out) as f:
    roots, poses, cam = f["root_3d"], f["poses_3d"], f["poses_3d_camera"]
  np.testing.assert_allclose(roots, lifter.roots(_pixels(walk, FOCAL, SIZE), SIZE,
                                                 focal_px=FOCAL), atol=1e-5)
  np.testing.assert_allclose(cam, poses - poses[:, :1] + roots[:, None], atol=1e-6)
  rows = json.loads((tmp_path / "o.json").read_text())["frames"]
  np.testing.assert_allclose([r["root_3d"] for r in rows], roots, atol=2e-6)
  np.testing.assert_allclose(rows[3]["pose_3d_camera"], cam[3], atol=2e-6)
  # BVH: the root moves through camera space, in BVH axes (x, -y, -z); forward kinematics
  # of the file gives back the camera-frame pelvis.
  _, positions, _ = bvh.read_bvh(tmp_path / "o.bvh")
  np.testing.assert_allclose(positions[:, 0], roots * [1, -1, -1], atol=1e-5)
  np.testing.assert_allclose(bvh.read_bvh_positions(tmp_path / "o.bvh")[:, 0], roots, atol=1e-5)
  # --height: the person's roots and poses scale with height / reference height.
  tall = tmp_path / "tall.npz"
  assert _run(kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={tall}",
              f"--focal={FOCAL}", "--height=1.87") == 0
  with np.load(tall) as f:
    k = 1.87 / trajectory.REFERENCE_HEIGHT_M
    np.testing.assert_allclose(f["root_3d"], roots * k, rtol=1e-5)
    np.testing.assert_allclose(f["poses_3d"], poses * k, rtol=1e-4, atol=1e-6)
  # Without --focal/--fov: the default field of view, and one warning line.
  guess = tmp_path / "guess.npz"
  assert _run(kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={guess}") == 0
  err = capsys.readouterr().err
  assert err.count("warning: no --focal or --fov") == 1
  with np.load(guess) as f:
    np.testing.assert_allclose(f["root_3d"], lifter.roots(
        _pixels(walk, FOCAL, SIZE), SIZE, focal_px=focal_px_for(SIZE)), atol=1e-5)
  plain = tmp_path / "plain.npz"
  assert _run(kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={plain}",
              "--no-trajectory") == 0
  with np.load(plain) as f:
    assert "root_3d" not in f and "poses_3d_camera" not in f
  assert _run(kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={plain}",
              "--focal=500", "--fov=60", "--overwrite") == 2
  assert "not both" in capsys.readouterr().err


def test_streaming_command_writes_the_same_roots(bundle, tmp_path):
  walk = _walk(16)
  kp = _keypoint_file(tmp_path / "k.npz", _pixels(walk, FOCAL, SIZE))
  outs = []
  for extra in ((), ("--stream",)):
    out = tmp_path / f"o{len(extra)}.npz"
    assert _run(kp, "--format=h36m17", f"--checkpoint={bundle}", f"--output={out}",
                f"--focal={FOCAL}", *extra) == 0
    with np.load(out) as f:
      outs.append((f["root_3d"], f["poses_3d_camera"]))
  np.testing.assert_allclose(outs[1][0], outs[0][0], atol=1e-5)
  np.testing.assert_allclose(outs[1][1], outs[0][1], atol=1e-5)


def test_scene_finds_the_floor_under_a_tilted_camera():
  """A body walking on a floor, seen by a camera tilted 20 degrees down: the scene's up is
  the floor's normal and the floor lies 8 cm under the ankles."""
  t = 30
  rng = np.random.default_rng(1)
  body = np.array([[0, 0.95, 0], [-.1, .95, 0], [-.1, .5, 0], [-.1, .08, 0], [.1, .95, 0],
                   [.1, .5, 0], [.1, .08, 0], [0, 1.2, 0], [0, 1.45, 0], [0, 1.55, .05],
                   [0, 1.7, 0], [.18, 1.45, 0], [.3, 1.2, 0], [.35, 1.0, 0], [-.18, 1.45, 0],
                   [-.3, 1.2, 0], [-.35, 1.0, 0]])       # world: y up, floor at y = 0
  walk = body[None] + np.stack([np.linspace(-1, 1, t), np.zeros(t), np.linspace(4, 6, t)],
                               -1)[:, None] + 0.005 * rng.standard_normal((t, 17, 3))
  tilt = np.radians(20)
  rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
  camera_height = 1.6
  cam = (walk - [0, camera_height, 0]) * [1, -1, 1] @ rot.T      # camera: y down, tilted
  fitted = scene.Scene.fit(cam)
  world_up_in_cam = rot @ np.array([0, -1, 0])                    # y down in camera space
  np.testing.assert_allclose(fitted.up, scene.to_plot(world_up_in_cam), atol=0.03)
  floor_point = scene.to_plot(rot @ (np.array([0, -camera_height, 5.0]) * [1, -1, 1]))
  assert fitted.floor == pytest.approx(float(floor_point @ fitted.up), abs=0.02)
  trail = fitted.on_floor(cam[:, 0])
  np.testing.assert_allclose(trail @ fitted.up, fitted.floor, atol=1e-9)
  points = scene.to_plot(cam).reshape(-1, 3)
  assert (np.abs(points - fitted.centre) <= fitted.radius).all()
