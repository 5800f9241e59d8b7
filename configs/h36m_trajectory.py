"""The root trajectory model on Human3.6M (`poseformer_jax.trajectory.TrajectoryNet`).

``--config=configs/h36m_trajectory.py`` trains the model that places the person
in the camera's space: from an 81-frame window of 2D rays (camera-independent:
pixels over the focal length) to the root joint's camera-frame position of the
centre frame, in metres. A PoseFormerV2 trunk (81 frames, 1 kept frame, 3 DCT
coefficients) of width 8 per token (1.0 M parameters, 2 MB in float16).

Recipe (fast, as `configs/h36m.py`'s): AdamW, warm-up then cosine, batch 256,
600-step epochs, gradient clipping; GT 2D plus the real Stacked Hourglass
detections (`data.keypoints_mix`), flip, 2D noise up to 0.004 in ray units
(~5 px at Human3.6M's 1145 px focal length), and a random camera rotation per
window (tilt and pan up to 20 degrees, roll up to 10) so that no camera's height
or tilt is learnt; each subject's roots rescaled to the reference person's size
(`data.reference_bones`), so the model does not learn the training subjects' sizes. Validation: MRPE on the first 500 frames of each test sequence.

Any field can be overridden, e.g. ``--config.model.embed_dim_ratio=16``.
"""

from poseformer_jax import config_lib
from poseformer_jax import trajectory
from poseformer_jax.errors import ConfigError


def get_config(arg: str = ""):
  if arg:
    raise ConfigError(f"configs/h36m_trajectory.py takes no argument, got {arg!r}")
  config = config_lib.base_config()
  config.variant = "trajectory_81"
  m = config.model
  m.kind = "trajectory"
  m.num_frames, m.kept_frames, m.kept_coeffs = 81, 1, 3
  m.embed_dim_ratio = 8
  m.root_joint = 0
  d = config.data
  d.keypoints = "gt"
  d.keypoints_mix = "sh_pt_mpii"
  d.subjects_train = "S1,S5,S6,S7"
  d.subjects_test = "S8"
  d.noise_std = 0.004
  d.camera_rotation = (20.0, 20.0, 10.0)
  d.reference_bones = trajectory.REFERENCE_BONES_M
  t = config.train
  t.batch_size = 256
  t.learning_rate = 5e-4
  t.schedule = "warmup_cosine"
  t.warmup_steps = 300
  t.end_lr_ratio = 0.01
  t.grad_clip_norm = 1.0
  t.epochs = 30
  t.max_steps_per_epoch = 600
  t.keep_checkpoints = 2
  t.checkpoint_every_steps = 200
  config.eval.max_frames = 500
  config.recipe = "fast"
  return config
