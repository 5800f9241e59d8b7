"""poseformer-jax: PoseFormerV2 (CVPR 2023) in JAX/Flax.

Public API (stable)::

    from poseformer_jax import jit_apply, lift, load_checkpoint, Lifter, StreamingLifter
    model, params, config = load_checkpoint(DIR)
    apply = jit_apply(model)                       # jax.jit(model.apply), fastest form here
    pose_3d = apply({'params': params}, x)         # x (B, F, J, 2) -> (B, 1, J, 3)
    poses = lift(keypoints_2d, image_size=(w, h), checkpoint=DIR)   # (T, 17, 3)

These names load their modules (and JAX) on first use, so ``import poseformer_jax``
stays light: the commands answer ``--help`` and bad input at once.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {"lift": "poseformer_jax.lifter", "Lifter": "poseformer_jax.lifter",
           "StreamingLifter": "poseformer_jax.stream", "jit_apply": "poseformer_jax.inference",
           "load_checkpoint": "poseformer_jax.checkpoint", "PoseFormerV2": "poseformer_jax.model"}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
  if name not in _PUBLIC:
    raise AttributeError(f"module 'poseformer_jax' has no attribute {name!r}")
  # Loaded on first use: these modules import JAX (seconds), which most commands never need.
  return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__():
  return sorted([*globals(), *_PUBLIC])
