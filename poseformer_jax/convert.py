"""Official PoseFormerV2 PyTorch weights -> this project's checkpoint format.

Accepts the Human3.6M training checkpoints (a dict with ``model_pos`` and
``epoch``/``lr``/``optimizer``/``random_state``) and plain state dicts (the
MPI-INF-3DHP ``no_refine_39_2758.pth``); keys may carry the ``module.`` prefix
of ``nn.DataParallel``. Architecture sizes are inferred from tensor shapes;
only the receptive field F (not stored in the weights) must be given.
Every key must be consumed and every shape must fit, unlike upstream's
``load_state_dict(strict=False)``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np

from poseformer_jax import config_lib
from poseformer_jax import model as model_lib
from poseformer_jax.errors import PoseFormerError


class ConversionError(PoseFormerError, ValueError):
  """The weights do not describe a PoseFormerV2 that this project can build."""


def extract_state_dict(obj: Any, path: str = "checkpoint") -> dict[str, np.ndarray]:
  """The model weights of a loaded checkpoint, ``module.`` prefix removed."""
  if not isinstance(obj, dict):
    raise ConversionError(f"{path}: not a checkpoint dict (got {type(obj).__name__})")
  state = obj.get("model_pos", obj)
  if not isinstance(state, dict) or not state:
    raise ConversionError(f"{path}: 'model_pos' is not a state dict")
  out = {}
  for key, value in state.items():
    if not isinstance(key, str) or not isinstance(value, np.ndarray):
      raise ConversionError(
          f"{path}: not a PoseFormerV2 state dict (entry {str(key)[:40]!r} is "
          f"{type(value).__name__}, expected a tensor)")
    out[key[len("module."):] if key.startswith("module.") else key] = value
  return out


def infer_model_config(state: Mapping[str, np.ndarray], frames: int, num_heads: int = 8,
                       path: str = "checkpoint") -> ml_collections.ConfigDict:
  """Reads J, C, f, n, depth, mlp ratio and qkv bias off the tensor shapes."""
  required = ["Spatial_pos_embed", "Temporal_pos_embed", "Temporal_pos_embed_",
              "blocks.0.mlp1.fc1.weight"]
  missing = [k for k in required if k not in state]
  if missing:
    raise ConversionError(
        f"{path}: not a PoseFormerV2 checkpoint (missing {', '.join(missing)})")
  _, joints, width = state["Spatial_pos_embed"].shape
  kept_frames = state["Temporal_pos_embed"].shape[1]
  kept_coeffs = state["Temporal_pos_embed_"].shape[1]
  embed_dim = state["Temporal_pos_embed"].shape[2]
  if embed_dim != joints * width:
    raise ConversionError(
        f"{path}: temporal width {embed_dim} != joints {joints} x spatial width {width}")
  depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
  hidden = state["blocks.0.mlp1.fc1.weight"].shape[0]
  if frames < kept_frames or frames < kept_coeffs:
    raise ConversionError(
        f"--frames {frames} is smaller than the checkpoint's kept frames ({kept_frames}) "
        f"or kept coefficients ({kept_coeffs})")
  if kept_frames % 2 == 0:
    raise ConversionError(f"{path}: kept frames {kept_frames} must be odd")
  if embed_dim % num_heads or width % num_heads:
    raise ConversionError(f"{path}: widths {width}/{embed_dim} not divisible by {num_heads} heads")
  cfg = config_lib.model_config(frames, kept_frames, kept_coeffs, joints)
  cfg.embed_dim_ratio = int(width)
  cfg.depth = depth
  cfg.num_heads = num_heads
  cfg.mlp_ratio = hidden / embed_dim
  cfg.qkv_bias = "blocks.0.attn.qkv.bias" in state
  return cfg


# torch module names -> Flax module paths (regex on the dotted prefix).
_MODULES = [
    (r"Joint_embedding", "spatial/joint_embedding"),
    (r"Spatial_blocks\.(\d+)\.(norm1|norm2)", r"spatial/block_\1/\2"),
    (r"Spatial_blocks\.(\d+)\.attn\.(qkv|proj)", r"spatial/block_\1/attn/\2"),
    (r"Spatial_blocks\.(\d+)\.mlp\.(fc1|fc2)", r"spatial/block_\1/mlp/\2"),
    (r"Spatial_norm", "spatial/norm"),
    (r"Freq_embedding", "frequency/freq_embedding"),
    (r"blocks\.(\d+)\.(norm1|norm2|norm3)", r"mixed_block_\1/\2"),
    (r"blocks\.(\d+)\.attn\.(qkv|proj)", r"mixed_block_\1/attn/\2"),
    (r"blocks\.(\d+)\.mlp1\.(fc1|fc2)", r"mixed_block_\1/mlp1/\2"),
    (r"blocks\.(\d+)\.mlp2\.(fc1|fc2)", r"mixed_block_\1/mlp2/mlp/\2"),
    (r"Temporal_norm", "temporal_norm"),
    (r"weighted_mean_", "time_mean"),
    (r"weighted_mean", "freq_mean"),
    (r"head\.0", "head_norm"),
    (r"head\.1", "head"),
]
_PARAMETERS = {
    "Spatial_pos_embed": "spatial/pos_embed",
    "Temporal_pos_embed": "time_pos_embed",
    "Temporal_pos_embed_": "freq_pos_embed",
}


def _flax_leaf(module_path: str, leaf: str, value: np.ndarray) -> tuple[str, np.ndarray]:
  """Maps one torch leaf to (flax path, array) with the layout change it needs."""
  if leaf == "bias":
    return f"{module_path}/bias", value
  if module_path.endswith("_mean"):  # Conv1d(N->1, k=1) weight (1, N, 1) -> (N, 1)
    return f"{module_path}/kernel", value.reshape(-1, 1)
  if value.ndim == 1:  # LayerNorm weight
    return f"{module_path}/scale", value
  return f"{module_path}/kernel", value.T  # Linear (out, in) -> (in, out)


def torch_to_flax(state: Mapping[str, np.ndarray], path: str = "checkpoint"
                  ) -> tuple[dict, list[str]]:
  """Renames and re-lays out every tensor. Returns (nested params, unconsumed keys)."""
  flat, unexpected = {}, []
  for key, value in state.items():
    value = np.asarray(value, np.float32)
    if key in _PARAMETERS:
      flat[_PARAMETERS[key]] = value
      continue
    module, _, leaf = key.rpartition(".")
    target = None
    for pattern, repl in _MODULES:
      if re.fullmatch(pattern, module):
        target = re.sub(pattern, repl, module)
        break
    if target is None or leaf not in ("weight", "bias"):
      unexpected.append(key)
      continue
    name, array = _flax_leaf(target, leaf, value)
    flat[name] = array
  nested: dict = {}
  for name, array in flat.items():
    node = nested
    *parents, last = name.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = array
  return nested, unexpected


def convert(obj: Any, frames: int, *, num_heads: int = 8, base: ml_collections.ConfigDict | None = None,
            path: str = "checkpoint", output_scale: float = 1.0) -> tuple[dict, ml_collections.ConfigDict]:
  """Loaded checkpoint object -> (Flax params, full config).

  `base` is the config to store (data/training blocks); its model block is
  replaced by the one inferred from the weights. `output_scale` multiplies
  the final Linear layer so outputs come out in metres (1e-3 for the
  MPI-INF-3DHP checkpoints, which upstream trains in millimetres). Raises
  `ConversionError` listing missing/unexpected keys and shape mismatches.
  """
  state = extract_state_dict(obj, path)
  model_cfg = infer_model_config(state, frames, num_heads, path)
  params, unexpected = torch_to_flax(state, path)
  model = model_lib.from_config(model_cfg)
  dummy = np.zeros((1, frames, model_cfg.num_joints, 2), np.float32)
  expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy)["params"]
  got = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
  want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(expected)}
  missing = sorted(set(want) - set(got))
  unexpected += sorted(set(got) - set(want))
  wrong = sorted(f"{k} {tuple(got[k])} != {tuple(want[k])}" for k in set(got) & set(want)
                 if tuple(got[k]) != tuple(want[k]))
  if missing or unexpected or wrong:
    parts = [f"{label}: {', '.join(items)}" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)) if items]
    raise ConversionError(f"{path}: weights do not fit PoseFormerV2 ({'; '.join(parts)})")
  if output_scale != 1.0:
    params["head"] = {k: v * np.float32(output_scale) for k, v in params["head"].items()}
  config = base.copy_and_resolve_references() if base is not None else config_lib.base_config()
  config.model = model_cfg
  config.model.drop_path_rate = 0.1  # training default; evaluation is deterministic anyway
  variant = f"{frames}_{model_cfg.kept_frames}_{model_cfg.kept_coeffs}"
  config.variant = variant
  return params, config
