"""PoseFormerV2 81_9_9 on MPI-INF-3DHP (P-STMO data pipeline), upstream recipe.

``--config=configs/mpi_inf_3dhp.py`` (the only published 3DHP model is 81_9_9).
"""

from poseformer_jax import config_lib


def get_config(variant: str = "81_9_9"):
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  config.data.dataset = "mpi_inf_3dhp"
  config.data.keypoints = ""
  config.data.subjects_train = "*"
  config.data.subjects_test = "*"
  config.train.batch_size = 512
  config.train.learning_rate = 7e-4
  config.train.lr_decay = 0.97
  return config
