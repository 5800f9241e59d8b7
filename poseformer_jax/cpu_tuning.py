"""How programs run fastest on XLA:CPU: compiler options per kind of program, model form.

Every jitted forward (`inference`) and the train step (`train_step.step_spec` and
`jit_kwargs`) take their options from here, so a CPU run is tuned the same way
everywhere and an accelerator run is not touched (XLA's defaults, the model as
configured).

Measured on the project's 2-core AVX-512 host, each alternated in one process
(`benchmarks/README.md`, "Tried"):

* Forward programs: no YNNPACK fusions, so dots run on XLA's own (Eigen) kernels,
  faster than YNNPACK's on the mixed blocks' GEMMs (whole forwards at batch 256:
  27_3_3 291 -> 249 ms, 81_9_9 802 -> 720; 243_27_27 at 64 590 -> 521).
* The train step: YNNPACK for dots only (``LIBRARY_FUSION_TYPE_DOT``). Its backward
  needs YNNPACK's GEMMs (Eigen's are slower on the transposed forms), but YNNPACK's
  reduction fusions materialise the broadcast attention's products; without them
  the step is 8-14 % faster for every variant (27_3_3 b256, 81_1_3 b256, 81_9_9 b64,
  243_27_27 b32) and needs less memory.
* Both: the spatial branch's attention (head dim 4, 17 tokens) as broadcast products
  instead of thousands of tiny batched dots (`model.Attention`, same parameters and
  values); with the options above its gradient is 3-6x faster (62 -> 9-14 ms per
  block at 768 frames).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# XLA:CPU compiler options per kind of program (`jax.jit(..., compiler_options=...)`).
OPTIONS = {
    "forward": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "train": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
}

# `PoseFormerV2.spatial_attention` for every program on a CPU.
SPATIAL_ATTENTION = "broadcast"


def compiler_options(program: str) -> dict:
  """XLA compiler options for a `program` ('forward' or 'train') on the default backend:
  `OPTIONS[program]` on a CPU whose XLA knows them, else none (XLA's defaults)."""
  if program not in OPTIONS:
    raise ValueError(f"program {program!r} must be one of {sorted(OPTIONS)}")
  if jax.default_backend() != "cpu":
    return {}
  options = tuple(sorted(OPTIONS[program].items()))
  return dict(options) if _xla_accepts(options) else {}


@functools.lru_cache(maxsize=None)
def _xla_accepts(options: tuple) -> bool:
  """Whether this jaxlib's XLA compiles with `options` (older or newer ones may not know
  an experimental option or its value; a program must then run on the defaults, not fail)."""
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros((), jnp.float32)).compile(
        compiler_options=dict(options))
  except RuntimeError as e:  # jax.errors.JaxRuntimeError: "No such compile option", bad value
    if "option" not in str(e):
      raise
    return False
  return True


def tuned_model(model):
  """`model` as programs on the default backend run it: on a CPU its spatial attention
  in `SPATIAL_ATTENTION` form (same parameters, same values to float rounding)."""
  if jax.default_backend() == "cpu" and hasattr(model, "spatial_attention"):
    return model.clone(spatial_attention=SPATIAL_ATTENTION)
  return model
