"""PoseFormerV2 81_9_9 on MPI-INF-3DHP (P-STMO data pipeline), upstream recipe.

``--config=configs/mpi_inf_3dhp.py`` (the only published 3DHP model is 81_9_9).

Upstream (``mpi_inf_3dhp/run_3dhp.py`` with its README command ``-f 81
-frame-kept 9 -coeff-kept 9 -b 512 --lr 0.0007 -lrd 0.97``): batch 512, lr
7e-4 multiplied by 0.97 after every epoch, epochs 1..79 (``--nepoch 80``),
flip augmentation in training and test-time flip, ground-truth 2D input,
Adam (amsgrad) *without* weight decay -- here AdamW with weight_decay=0, i.e.
plain Adam (amsgrad is not reproduced). The data files are P-STMO's
``data_train_3dhp.npz`` / ``data_test_3dhp.npz`` in ``data.root``.
"""

from poseformer_jax import config_lib


def get_config(variant: str = "81_9_9"):
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  config.data.dataset = "mpi_inf_3dhp"
  config.data.root = "data"            # folder with data_train_3dhp.npz and data_test_3dhp.npz
  config.data.keypoints = ""           # ground-truth 2D from the files (no detector choice)
  config.data.subjects_train = "*"     # 'S1,S2,...' or '*' (S1..S8)
  config.data.subjects_test = "*"      # 'TS1,TS2,...' or '*' (TS1..TS6)
  config.data.actions = "*"            # training sequence name prefixes ('Seq1'), '*' for all
  config.data.flip_augment = True
  # Synthetic stand-in (data.synthetic.enabled=True): train subjects, sequences per
  # subject, frames per training sequence (3 cameras; TS1..TS6 of 150 frames).
  config.data.synthetic.subjects = "S1,S2"
  config.data.synthetic.actions_per_subject = 2
  config.data.synthetic.frames = 200

  config.train.batch_size = 512
  config.train.learning_rate = 7e-4
  config.train.lr_decay = 0.97
  config.train.epochs = 79
  config.train.weight_decay = 0.0

  config.eval.flip = True
  return config
