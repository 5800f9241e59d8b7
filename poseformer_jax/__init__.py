"""poseformer-jax: PoseFormerV2 (CVPR 2023) in JAX/Flax.

Public API (stable)::

    from poseformer_jax import load_checkpoint, lift
    model, params, config = load_checkpoint(DIR)
    pose_3d = model.apply({'params': params}, x)   # x (B, F, J, 2) -> (B, 1, J, 3)
    poses = lift(keypoints_2d, image_size=(w, h), checkpoint=DIR)   # (T, 17, 3)
"""

__version__ = "0.1.0"


def load_checkpoint(directory, step=None):
  """See `poseformer_jax.checkpoint.load_checkpoint`."""
  from poseformer_jax.checkpoint import load_checkpoint as _load
  return _load(directory, step)


# `poseformer_jax.lift` is the function (its module imports only numpy at load).
# The module is also the CLI (`python -m poseformer_jax.lift`); runpy warns when a
# package has already imported the module it is about to run, which is harmless
# here (the module has no import-time side effects), so that one warning is muted.
import warnings as _warnings

_warnings.filterwarnings(
    "ignore", message=r"'poseformer_jax\.lift' found in sys\.modules", category=RuntimeWarning)

from poseformer_jax.lift import lift  # noqa: E402


def __getattr__(name):
  if name == "PoseFormerV2":
    from poseformer_jax.model import PoseFormerV2
    return PoseFormerV2
  raise AttributeError(name)
