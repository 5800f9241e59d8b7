"""Per-frame FLOPs of each published variant: XLA's cost analysis, and a count of the products.

  python -m poseformer_jax.flops [--batch 64]

Prints XLA's FLOP count of one deterministic forward pass (one output frame)
next to the paper's MFLOPs column. Both count a multiply-add as 2 FLOPs; XLA
also counts the element-wise work (softmax, GELU, LayerNorm), which the
paper's count leaves out, hence XLA's figure is 3-6 % higher.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
from absl import flags

from poseformer_jax import cli
from poseformer_jax import config_lib
from poseformer_jax import model as model_lib


def forward_flops(model_cfg, batch: int = 64) -> float:
  """XLA-counted FLOPs per output frame of a jitted forward pass (inference mode)."""
  model = model_lib.from_config(model_cfg)
  x = jax.ShapeDtypeStruct((batch, model_cfg.num_frames, model_cfg.num_joints, 2), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  compiled = jax.jit(lambda p, v: model.apply(p, v, deterministic=True)).lower(params, x).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) / batch


def matmul_flops(model_cfg) -> float:
  """FLOPs per output frame of the forward's matrix products, counted from the config.

  A multiply-add is 2 FLOPs. Counts the dense layers, the attention products and
  the DCTs of both branches; leaves out the element-wise work, so it is 1-3 %
  below `forward_flops` (instant: no tracing). ``model_cfg``: the config's
  `model` block.
  """
  m = model_cfg
  j, c, f, n, frames = (int(m.num_joints), int(m.embed_dim_ratio), int(m.kept_frames),
                        int(m.kept_coeffs), int(m.num_frames))
  d, depth, ratio = j * c, int(m.depth), float(m.mlp_ratio)

  def block(tokens: int, width: int) -> float:  # qkv, proj, q.k and w.v, the MLP
    return tokens * width * (4 * width + 2 * tokens + 2 * int(width * ratio))

  spatial = f * (j * 2 * c + depth * block(j, c))
  mixed = depth * (block(n + f, d) + 2 * ((n + f) - (n + f) // 2) ** 2 * d)  # + FreqMlp's DCTs
  frequency = n * frames * j * 2 + n * 2 * j * d
  head = 2 * d * 3 * j
  return 2.0 * (spatial + mixed + frequency + head)


def main(argv=None) -> int:
  """Command line (see the module docstring); `argv` without the program name."""
  fv = flags.FlagValues()
  flags.DEFINE_integer("batch", 64, "Batch of the compiled forward pass (FLOPs are per frame).",
                       lower_bound=1, flag_values=fv)
  status = cli.parse_command_flags(fv, argv, __doc__)
  if status is not None:
    return status
  print(f"{'variant':<11} {'XLA MFLOPs':>11} {'paper MFLOPs':>13} {'XLA/paper':>10}")
  for name in config_lib.H36M_VARIANTS:
    cfg = config_lib.base_config()
    config_lib.set_variant(cfg, name)
    mflops = forward_flops(cfg.model, fv.batch) / 1e6
    paper = config_lib.PAPER_MFLOPS[name]
    print(f"{name:<11} {mflops:>11.1f} {paper:>13.1f} {mflops / paper:>10.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
