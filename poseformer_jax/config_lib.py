"""The one configuration schema shared by training, evaluation, conversion and lifting.

Files in ``configs/`` call `base_config()` and adjust it; everything that
changes behaviour lives in this tree (no scattered flags or constants).
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from poseformer_jax.errors import ConfigError

# The published Human3.6M models: name -> (frames F, kept frames f, kept coefficients n).
H36M_VARIANTS = {
    "27_1_3": (27, 1, 3),
    "27_3_3": (27, 3, 3),
    "81_1_3": (81, 1, 3),
    "81_3_3": (81, 3, 3),
    "81_9_9": (81, 9, 9),
    "243_27_27": (243, 27, 27),
}

# Paper's MFLOPs per output frame, for the FLOPs report.
PAPER_MFLOPS = {
    "27_1_3": 77.2, "27_3_3": 117.3, "81_1_3": 77.2, "81_3_3": 117.3,
    "81_9_9": 351.7, "243_27_27": 1054.8,
}


def model_config(frames: int = 27, kept_frames: int = 3, kept_coeffs: int = 3,
                 num_joints: int = 17) -> ml_collections.ConfigDict:
  """The `model` block: every architectural hyper-parameter of PoseFormerV2."""
  return ml_collections.ConfigDict(dict(
      kind="pose",                # 'pose' (PoseFormerV2) | 'trajectory' (`trajectory.TrajectoryNet`)
      num_frames=frames,          # receptive field F
      kept_frames=kept_frames,    # f: centre frames fed to the spatial branch (odd)
      kept_coeffs=kept_coeffs,    # n: low-frequency DCT coefficients kept
      num_joints=num_joints,      # J
      embed_dim_ratio=32,         # spatial width C; temporal width is J*C
      depth=4,
      num_heads=8,
      mlp_ratio=2.0,
      qkv_bias=True,
      drop_path_rate=0.1,         # training only; evaluation is deterministic
      dtype="float32",            # compute dtype ('bfloat16' for mixed precision)
  ))


def data_config() -> ml_collections.ConfigDict:
  """The `data` block: dataset files, splits, augmentation, the input pipeline."""
  return ml_collections.ConfigDict(dict(
      dataset="h36m",                   # 'h36m' | 'mpi_inf_3dhp'
      root="data",                      # folder with data_3d_h36m.npz and data_2d_h36m_<keypoints>.npz
      keypoints="cpn_ft_h36m_dbb",      # 2D source: data_2d_h36m_<keypoints>.npz
      keypoints_mix="",                 # detection mix (h36m, training only): comma list of more 2D
                                        # sources whose sequences join the training split, e.g. 'sh_pt_mpii'
      subjects_train="S1,S5,S6,S7,S8",
      subjects_test="S9,S11",
      actions="*",                      # comma-separated action prefixes, '*' for all
      downsample=1,                     # keep every k-th frame
      subset=1.0,                       # fraction of each training sequence
      flip_augment=True,                # mirrored copy of every training sample
      noise_std=0.0,                    # 2D input noise augmentation (normalised units, 0.01 = 5 px
                                        # at 1000 px): per-sample std uniform in [0, noise_std]
      joint_noise="",                   # 2D source (e.g. 'sh_pt_mpii') whose per-joint errors shape
                                        # extra training noise (`augment.DetectorNoise`)
      joint_noise_scale=1.0,            # x those per-joint standard deviations
      joint_noise_prob=0.5,             # fraction of training windows that get it
      swap_prob=0.0,                    # per frame and left/right pair: swapped 2D (noisy windows)
      camera_rotation=(0.0, 0.0, 0.0),  # trajectory models: max random camera tilt/pan/roll, deg
      reference_bones=0.0,              # trajectory models: >0 rescales each subject's roots to
                                        # this summed bone length (m; see `trajectory_view`)
      shuffle_seed=0,
      prefetch=2,
      backend="tf",                     # 'tf' (tf.data) or 'numpy' (no TensorFlow needed)
      synthetic=ml_collections.ConfigDict(dict(
          enabled=False,                # generate a synthetic dataset into `root` if missing
          subjects="S1,S5,S6,S7,S8,S9,S11",
          actions_per_subject=3,
          frames=400,
          seed=0,
      )),
  ))


def base_config() -> ml_collections.ConfigDict:
  """Human3.6M defaults: the upstream recipe (AdamW 1e-4, wd 0.1, x0.99/epoch, batch 1024)."""
  c = ml_collections.ConfigDict()
  c.variant = "27_3_3"
  c.model = model_config()
  c.host_memory = "auto"  # train.py/eval.py: 'auto' | 'keep' | 'system' (see `host_memory`)

  c.data = data_config()

  c.train = ml_collections.ConfigDict(dict(
      batch_size=1024,                  # global batch, frames (flip copies included)
      epochs=200,
      learning_rate=1e-4,
      lr_decay=0.99,                    # multiplied after every epoch ('exponential')
      schedule="exponential",           # 'exponential' (upstream) | 'warmup_cosine' (fast recipe)
      warmup_steps=0,                   # 'warmup_cosine': linear warm-up steps
      end_lr_ratio=0.01,                # 'warmup_cosine': final lr / peak lr
      grad_clip_norm=0.0,               # >0: clip the global gradient norm
      init_from="",                     # a fresh run starts from these parameters (checkpoint
                                        # dir or 'pretrained:NAME'), with a fresh optimizer
      weight_decay=0.1,
      seed=0,
      checkpoint_every_epochs=1,
      keep_checkpoints=3,
      max_steps_per_epoch=-1,           # -1: the whole epoch; >0 caps it (smoke runs)
      eval_every_epochs=1,
      log_every_steps=50,
      # AdamW as torch.optim.AdamW defaults (decoupled weight decay on every parameter).
      adam_b1=0.9,
      adam_b2=0.999,
      adam_eps=1e-8,
      grad_accum_steps=0,               # microbatches per step (less memory); 0: automatic, more
                                        # than 1 only on a CPU at large batches (cpu_tuning)
      checkpoint_every_steps=0,         # >0: also checkpoint every N steps (mid-epoch)
      stop_after_steps=-1,              # >0: checkpoint and stop at this global step (tests, smoke runs)
      progress_bar=True,                # tqdm bar per epoch (process 0)
      tensorboard=True,                 # event files in WORKDIR/tensorboard (needs `tensorboard`)
      final_eval=True,                  # full evaluation protocol on the best checkpoint at the end
      # Multi-process runs: jax.distributed.initialize() when `distributed`, a coordinator
      # address or num_processes > 1 is set (or JAX_COORDINATOR_ADDRESS is in the
      # environment); ''/-1 let JAX detect the values from the cluster environment.
      distributed=False,
      coordinator_address="",
      num_processes=-1,
      process_id=-1,
  ))

  c.eval = ml_collections.ConfigDict(dict(
      batch_size=1024,                  # windows per forward pass
      flip=True,                        # test-time flip augmentation
      noise_std=0.0,                    # Gaussian noise on the 2D input, pixels (robustness study)
      per_subject=False,
      max_frames=-1,                    # -1: every frame; >0 caps frames per sequence (validation during training)
      known_size=False,                 # trajectory: roots scaled to each subject's true size, as
                                        # a user who gives the person's height gets them
  ))
  return c


def set_variant(config: ml_collections.ConfigDict, variant: str) -> None:
  """Sets F, f, n from a published variant name such as '243_27_27'."""
  if variant not in H36M_VARIANTS:
    raise ConfigError(
        f"unknown variant {variant!r}; choose one of {', '.join(H36M_VARIANTS)}")
  frames, kept_frames, kept_coeffs = H36M_VARIANTS[variant]
  config.variant = variant
  config.model.num_frames = frames
  config.model.kept_frames = kept_frames
  config.model.kept_coeffs = kept_coeffs


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py[:arg]`` the way ``--config`` flags do (calls ``get_config(arg)``)."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"{path}: no such config file")
  module_spec = importlib.util.spec_from_file_location("_poseformer_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(f"{path}: cannot load config ({type(e).__name__}: {e})") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path}: has no get_config()")
  return module.get_config(arg) if arg else module.get_config()
