"""The root trajectory: rays, features, decoding, camera rotation, loss, metrics, evaluation,
training and the pose checkpoint that carries a trajectory model."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import architectures, checkpoint, config_lib, evaluation, metrics
from poseformer_jax import trajectory, trajectory_baseline, train_lib
from poseformer_jax.data import cameras, dataset, skeleton


def _walk(frames=81, depth=5.0, seed=0) -> np.ndarray:
  """(T, 17, 3) camera-frame metres: a real-sized skeleton walking across, slightly nearer."""
  rng = np.random.default_rng(seed)
  base = np.array([[0, 0, 0], [-.13, 0, 0], [-.13, .45, 0], [-.13, .88, 0], [.13, 0, 0],
                   [.13, .45, 0], [.13, .88, 0], [0, -.23, 0], [0, -.48, 0], [0, -.58, -.05],
                   [0, -.68, 0], [.17, -.45, 0], [.45, -.45, 0], [.7, -.45, 0],
                   [-.17, -.45, 0], [-.45, -.45, 0], [-.7, -.45, 0]])
  t = np.linspace(0, 1, frames)[:, None, None]
  wobble = 0.02 * rng.standard_normal((frames, 17, 3))
  root = np.stack([-1.0 + 2.0 * t[:, 0, 0], 0.3 + 0 * t[:, 0, 0], depth - 0.5 * t[:, 0, 0]], -1)
  return base[None] + wobble + root[:, None]


def _model_and_params(frames=81, seed=0):
  cfg = config_lib.base_config().model
  cfg.kind = "trajectory"
  cfg.num_frames, cfg.kept_frames, cfg.kept_coeffs = frames, 1, 3
  cfg.embed_dim_ratio, cfg.depth, cfg.num_heads = 4, 1, 2
  cfg.root_joint = 0
  model = architectures.from_config(cfg)
  x = jnp.zeros((1, frames, 17, 2), jnp.float32)
  return model, model.init(jax.random.PRNGKey(seed), x)["params"]


def test_pixels_to_rays_undoes_the_lens_and_the_intrinsics():
  cam = cameras.camera("S8", 1)
  rng = np.random.default_rng(0)
  uv = rng.uniform(-0.45, 0.45, (5000, 2))
  points = np.concatenate([uv, np.ones((5000, 1))], -1) * rng.uniform(2, 8, (5000, 1))
  px = cameras.project_camera(points, cam)
  assert np.abs(px - (uv * cam.focal_length + cam.center)).max() > 5.0  # the lens matters
  np.testing.assert_allclose(cameras.pixels_to_rays(px, cam), uv, atol=1e-9)


def test_two_cameras_see_the_same_trajectory():
  """The same 3D motion through two pinhole cameras (other focal lengths, resolutions,
  principal points): the rays, hence the model's answer, agree to float32 rounding."""
  model, params = _model_and_params()
  walk = _walk()
  answers = []
  for focal, centre in ((1145.0, (512.5, 515.4)), (610.0, (961.0, 538.0))):
    px = walk[..., :2] / walk[..., 2:] * focal + np.asarray(centre)
    rays = trajectory.rays_from_pixels(px, focal, centre)
    answers.append(np.asarray(model.apply({"params": params}, rays[None]))[0, 0, 0])
  np.testing.assert_allclose(answers[0], answers[1], atol=1e-5)  # metres
  assert np.linalg.norm(answers[0]) > 0.1


def test_features_see_the_shape_not_the_distance():
  """The same person twice as far away (same direction): the 2D size halves, the features
  (the skeleton over its 2D size) change only by perspective. The decoded depth is the
  network's depth x size over the 2D size."""
  walk = _walk()
  rays = walk[..., :2] / walk[..., 2:]
  near = jnp.asarray(rays[None], jnp.float32)
  centre_root = walk[40:41, :1]
  moved = walk + centre_root                                  # root at twice the distance
  far = jnp.asarray((moved[..., :2] / moved[..., 2:])[None], jnp.float32)
  f_near, s_near, c_near = trajectory.window_features(near)
  f_far, s_far, c_far = trajectory.window_features(far)
  assert float(s_far[0]) == pytest.approx(float(s_near[0]) / 2, rel=0.05)
  np.testing.assert_allclose(c_far, c_near, atol=1e-6)
  assert np.abs(np.asarray(f_near) - np.asarray(f_far)).max() < 0.1
  assert np.abs(np.asarray(f_near)).max() > 1.0
  np.testing.assert_allclose(c_near[0], rays[40, 0], atol=1e-6)
  raw = jnp.array([[0.0, 0.0, 0.3]])
  root = trajectory.decode(raw, s_near, c_near)[0]
  assert float(root[2]) == pytest.approx(np.exp(0.3 + trajectory.LOG_DEPTH_SIZE_PRIOR)
                                         / float(s_near[0]), rel=1e-5)
  np.testing.assert_allclose(root[:2] / root[2], rays[40, 0], atol=1e-6)


def test_camera_rotation_moves_rays_and_target_together():
  walk = _walk(frames=9)
  rays = jnp.asarray((walk[..., :2] / walk[..., 2:])[None], jnp.float32)
  root = jnp.asarray(walk[None, 4:5, :1], jnp.float32)          # (1, 1, 1, 3)
  key = jax.random.PRNGKey(3)
  new_rays, new_root = trajectory.rotate_cameras(rays, root, key, (20.0, 20.0, 10.0))
  angles = jax.random.uniform(key, (1, 3), minval=-1.0, maxval=1.0) * jnp.radians(
      jnp.array([20.0, 20.0, 10.0]))
  rot = np.asarray(trajectory.rotation_matrices(angles))[0]
  np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
  turned = walk @ rot.T
  np.testing.assert_allclose(new_rays[0], turned[..., :2] / turned[..., 2:], atol=1e-5)
  np.testing.assert_allclose(new_root[0, 0, 0], turned[4, 0], atol=1e-5)
  assert np.abs(np.asarray(new_rays[0]) - np.asarray(rays[0])).max() > 0.01
  same = trajectory.rotate_cameras(rays, root, key, (0.0, 0.0, 0.0))
  assert same[0] is rays and same[1] is root


def test_root_loss_is_the_error_over_true_depth():
  target = jnp.array([[[[0.0, 0.0, 4.0]]], [[[1.0, 0.0, 2.0]]]])
  pred = target + jnp.array([[[[0.3, 0.4, 0.0]]], [[[0.0, 0.0, 0.2]]]])
  assert float(trajectory.root_loss(pred, target)) == pytest.approx((0.5 / 4 + 0.2 / 2) / 2)
  grad = jax.grad(lambda p: trajectory.root_loss(p, target))(target)
  assert np.isfinite(np.asarray(grad)).all()


def test_root_metrics_by_hand():
  true_root = np.array([[0.0, 0.0, 5.0], [1.0, 1.0, 4.0]])
  pred_root = true_root + np.array([[0.3, 0.0, -0.4], [0.0, -0.2, 0.0]])
  err = metrics.root_errors(pred_root, true_root)
  np.testing.assert_allclose(err["mrpe"], [0.5, 0.2])
  np.testing.assert_allclose(err["mrpe_x"], [0.3, 0.0])
  np.testing.assert_allclose(err["mrpe_y"], [0.0, 0.2])
  np.testing.assert_allclose(err["mrpe_z"], [0.4, 0.0])
  pose = np.zeros((2, 17, 3))
  pose[:, 1] = [0.1, 0.0, 0.0]
  shifted = pose + [0.0, 0.0, 0.05]                     # a predicted root joint off 0 is ignored
  abs_err = metrics.absolute_mpjpe(shifted, pred_root, pose, true_root)
  np.testing.assert_allclose(abs_err, [0.5, 0.2], atol=1e-12)


def _oracle(sequences, offset):
  class Oracle:
    def predict_sequences(self, rays, progress=None):
      return [np.asarray(s.root_3d[:len(r)])[:, None] + offset for s, r in zip(sequences, rays)]
  return Oracle()


def test_evaluate_scores_roots_and_absolute_poses(h36m_data_cfg):
  sequences, info = dataset.load_sequences(h36m_data_cfg, "test")
  offset = np.array([0.03, -0.04, 0.12])
  results = evaluation.evaluate(None, sequences, info, progress=False,
                                trajectory=_oracle(sequences, offset))
  avg = results["average"]
  assert set(avg) == {"mrpe", "mrpe_x", "mrpe_y", "mrpe_z"}
  assert avg["mrpe"] == pytest.approx(130.0, abs=1e-3)
  assert (avg["mrpe_x"], avg["mrpe_y"], avg["mrpe_z"]) == pytest.approx((30, 40, 120), abs=1e-3)

  class PerfectPose:
    def predict_sequences(self, inputs, progress=None):
      return [np.asarray(s.positions_3d[:len(x)]) for s, x in zip(sequences, inputs)]
  both = evaluation.evaluate(PerfectPose(), sequences, info, progress=False,
                             trajectory=_oracle(sequences, offset))
  assert both["average"]["p1"] == pytest.approx(0.0, abs=1e-6)
  assert both["average"]["abs_mpjpe"] == pytest.approx(130.0, abs=1e-3)
  assert list(both["average"])[:4] == ["p1", "p2", "p3", "mpjve"]


def test_pinhole_baseline_recovers_depth_of_the_mean_skeleton(h36m_data_cfg):
  train, info = dataset.load_sequences(h36m_data_cfg, "train")
  baseline = trajectory_baseline.PinholeBaseline.fit(train)
  s = train[0]
  assert 0.5 < baseline.factor < 1.0  # projection shortens bones
  roots = baseline.roots(s.rays_2d)
  np.testing.assert_allclose(roots[:, :2] / roots[:, 2:], s.rays_2d[:, 0], atol=1e-6)
  rel = np.abs(roots[:, 2] - s.root_3d[:, 2]) / s.root_3d[:, 2]
  assert np.median(rel) < 0.1
  # Twice the summed 2D bone length: half the depth.
  assert baseline.roots(s.rays_2d * 2)[0, 2] == pytest.approx(roots[0, 2] / 2, rel=1e-9)


def _trajectory_config(root, **overrides):
  config = config_lib.load_config_file(str(_REPO / "configs" / "h36m_trajectory.py"))
  config.data.root = str(root)
  config.data.keypoints, config.data.keypoints_mix = "gt", ""
  config.data.subjects_train, config.data.subjects_test = "S1,S5", "S9,S11"
  config.data.backend = "numpy"
  config.model.num_frames, config.model.embed_dim_ratio, config.model.depth = 27, 4, 1
  config.model.num_heads = 2
  config.train.update(epochs=2, max_steps_per_epoch=15, batch_size=64, warmup_steps=5,
                      progress_bar=False, tensorboard=False, checkpoint_every_steps=0)
  config.eval.max_frames = 60
  for k, v in overrides.items():
    section, field = k.split(".")
    config[section][field] = v
  return config


from conftest import REPO_ROOT as _REPO  # noqa: E402


def test_trajectory_training_learns_and_bundles_with_a_pose_model(synthetic_h36m_root, tmp_path):
  config = _trajectory_config(synthetic_h36m_root)
  result = train_lib.train(config, tmp_path / "traj", print_fn=lambda s: None)
  losses = np.asarray(result.losses)
  assert losses[-5:].mean() < 0.7 * losses[:5].mean()
  final = result.final["average"]
  assert set(final) == {"mrpe", "mrpe_x", "mrpe_y", "mrpe_z"}
  assert final["mrpe"] < 1500.0
  model, params, cfg = checkpoint.load_checkpoint(tmp_path / "traj")
  assert architectures.is_trajectory(model) and cfg.model.kind == "trajectory"

  # A pose checkpoint holding it as trajectory/: eval scores pose, root and both together.
  pose_cfg = config_lib.base_config()
  pose_cfg.model.update(num_frames=27, kept_frames=1, kept_coeffs=3, embed_dim_ratio=4,
                        depth=1, num_heads=2)
  pose = architectures.from_config(pose_cfg.model)
  pose_params = pose.init(jax.random.PRNGKey(0), jnp.zeros((1, 27, 17, 2)))["params"]
  pose_dir = tmp_path / "pose"
  checkpoint.save_params(pose_dir, pose_params, pose_cfg)
  shutil.copytree(tmp_path / "traj" / "best", pose_dir / checkpoint.TRAJECTORY_DIR)
  loaded = checkpoint.load_trajectory(pose_dir)
  assert loaded is not None and architectures.is_trajectory(loaded[0])
  assert checkpoint.load_trajectory(tmp_path / "traj" / "best") is None
  eval_cfg = _trajectory_config(synthetic_h36m_root)
  results = evaluation.run_eval(eval_cfg, pose_dir, progress=False)
  avg = results["average"]
  assert {"p1", "mrpe", "abs_mpjpe"} <= set(avg)
  assert avg["mrpe"] == pytest.approx(final["mrpe"], rel=1e-4)
  assert avg["abs_mpjpe"] > avg["p1"] * 0.5
  walking = next(iter(results["actions"].values()))
  assert {"mrpe", "mrpe_x", "mrpe_y", "mrpe_z", "abs_mpjpe"} <= set(walking)


def test_a_pose_model_as_trajectory_is_refused(synthetic_h36m_root, tmp_path):
  pose_cfg = config_lib.base_config()
  pose_cfg.model.update(num_frames=27, embed_dim_ratio=4, depth=1, num_heads=2)
  pose = architectures.from_config(pose_cfg.model)
  params = pose.init(jax.random.PRNGKey(0), jnp.zeros((1, 27, 17, 2)))["params"]
  checkpoint.save_params(tmp_path / "p", params, pose_cfg)
  checkpoint.save_params(tmp_path / "p" / "trajectory", params, pose_cfg)
  with pytest.raises(checkpoint.CheckpointError, match="not a trajectory model"):
    checkpoint.load_trajectory(tmp_path / "p")


def test_scale_to_height():
  roots = np.array([[0.5, 0.2, 5.0]])
  np.testing.assert_allclose(trajectory.scale_to_height(roots, trajectory.REFERENCE_HEIGHT_M * 1.1),
                             roots * 1.1)


def test_skeleton_bones_sum():
  pose = np.zeros((17, 3))
  for child, parent in skeleton.bones():
    pose[child] = pose[parent] + [0.0, 0.1, 0.0]
  assert trajectory_baseline.summed_bones(pose) == pytest.approx(1.6)


def test_training_targets_are_rescaled_to_the_reference_person(h36m_data_cfg):
  train, info = dataset.load_sequences(h36m_data_cfg, "train")
  sizes = dataset.subject_sizes(train)
  assert set(sizes) == {"S1", "S5"} and all(3.0 < v < 5.5 for v in sizes.values())
  plain, tinfo = dataset.trajectory_view(train, info)
  scaled, _ = dataset.trajectory_view(train, info, reference_bones=4.0)
  assert tinfo.joints_left == () and tinfo.root_joint == 0
  for s, p, q in zip(train, plain, scaled):
    np.testing.assert_array_equal(p.keypoints_2d, s.rays_2d)
    np.testing.assert_allclose(p.positions_3d[:, 0], s.root_3d)
    np.testing.assert_allclose(q.positions_3d[:, 0], s.root_3d * 4.0 / sizes[s.subject],
                               rtol=1e-6)


def test_known_size_scales_each_subjects_roots(h36m_data_cfg):
  sequences, info = dataset.load_sequences(h36m_data_cfg, "test")
  sizes = dataset.subject_sizes(sequences)
  ref = trajectory.REFERENCE_BONES_M

  class ReferenceSized:  # the true roots of each subject if it were the reference size
    def predict_sequences(self, rays, progress=None):
      return [np.asarray(s.root_3d[:len(r)])[:, None] * ref / sizes[s.subject]
              for s, r in zip(sequences, rays)]
  known = evaluation.evaluate(None, sequences, info, progress=False, trajectory=ReferenceSized(),
                              known_size=True)
  unknown = evaluation.evaluate(None, sequences, info, progress=False,
                                trajectory=ReferenceSized())
  assert known["average"]["mrpe"] == pytest.approx(0.0, abs=1e-3)
  assert unknown["average"]["mrpe"] > 20.0
