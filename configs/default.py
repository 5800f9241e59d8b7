"""The embedded default: a small PoseFormerV2 trained for a few minutes on CPU, no download.

  python train.py --config=configs/default.py --workdir=runs/demo
  python eval.py --config=configs/default.py --checkpoint=runs/demo

Same architecture and recipe as the paper's models (AdamW, wd 0.1, lr decay
per epoch, MPJPE, flip augmentation, drop path), scaled down: 27 frames,
3 kept frames / 3 DCT coefficients, spatial width 16, depth 2, on the synthetic
Human3.6M look-alike that `poseformer_jax.data.synthetic` writes into
``runs/synthetic_data`` on first use (train S1,S5,S6,S7,S8; test S9,S11; the
noisy 'cpn' 2D copy as input). Validation every epoch on the first
``eval.max_frames`` frames of each test sequence; the full evaluation table
at the end.
"""

import importlib.util

from poseformer_jax import config_lib


def get_config():
  config = config_lib.base_config()
  config_lib.set_variant(config, "27_3_3")
  config.variant = "default_small_27_3_3"
  m = config.model
  m.embed_dim_ratio = 16
  m.depth = 2
  m.num_heads = 4

  d = config.data
  d.root = "runs/synthetic_data"
  d.keypoints = "cpn_ft_h36m_dbb"      # the synthetic copy with detector-like pixel noise
  d.subjects_train = "S1,S5,S6,S7,S8"
  d.subjects_test = "S9,S11"
  d.synthetic.enabled = True
  d.downsample = 2
  d.backend = "tf" if importlib.util.find_spec("tensorflow") is not None else "numpy"

  t = config.train
  t.batch_size = 256
  t.epochs = 4
  t.learning_rate = 1e-3               # small model, short schedule
  t.lr_decay = 0.9
  t.checkpoint_every_epochs = 1
  t.keep_checkpoints = 2
  t.eval_every_epochs = 1
  t.log_every_steps = 10

  config.eval.batch_size = 512
  config.eval.max_frames = 200         # validation: the first 200 frames of each test sequence
  return config
