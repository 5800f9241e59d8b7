"""PoseFormerV2 on Human3.6M: the six published models and the upstream recipe.

Select a model by name: ``--config=configs/h36m.py:243_27_27`` (frames_keptframes_keptcoeffs).
Any field can be overridden on the command line, e.g. ``--config.train.batch_size=256``.
"""

from poseformer_jax import config_lib


def get_config(variant: str = "27_3_3"):
  config = config_lib.base_config()
  config_lib.set_variant(config, variant)
  return config
