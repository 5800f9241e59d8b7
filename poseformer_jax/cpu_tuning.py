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
* The train step, at large batches: the batch as microbatches (`train_microbatches`)
  once one pass would be more than `MICROBATCH_GFLOP` of work. One pass over the
  whole batch allocates all its activations at once (3.3 GB for 243_27_27 at 256),
  and XLA:CPU takes them from the kernel again at every step (816,000 page faults
  there); in 4 parts of 64 samples it faults a quarter of that: 243_27_27 at 256
  8.4 -> 7.4 s (2 parts: 7.7 s). 81_9_9 at 256 (2 parts) runs at the same speed in
  half the memory. Below the budget parts only add overhead (243_27_27 at 64,
  81_9_9 at 64, 27_3_3 at 256: the same or up to 10 % slower).
* Both: the spatial branch's attention (head dim 4, 17 tokens) as broadcast products
  instead of thousands of tiny batched dots (`model.Attention`, same parameters and
  values); with the options above its gradient is 3-6x faster (62 -> 9-14 ms per
  block at 768 frames).
* Both: the mixed blocks' attention as broadcast products too when they see few tokens
  (4 for 27_1_3 / 81_1_3, 6 for 27_3_3 / 81_3_3), where its (T, T) products per head
  are again thousands of tiny dots. Measured on a 2-core AMD EPYC (AVX2): forwards at
  batch 256 27_1_3 153 -> 133 ms, 27_3_3 244 -> 216 ms; with 18 tokens (81_9_9)
  693 -> 741 ms and 54 (243_27_27 at 64) 589 -> 831 ms, so those keep the dots.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from poseformer_jax import flops

# XLA:CPU compiler options per kind of program (`jax.jit(..., compiler_options=...)`).
OPTIONS = {
    "forward": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "train": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
}

# Train-step work (GFLOP, forward + backward ~ 3 forwards) per microbatch above which
# a CPU step splits its batch (`train_microbatches`).
MICROBATCH_GFLOP = 250.0

# `PoseFormerV2.spatial_attention` for every program on a CPU.
SPATIAL_ATTENTION = "broadcast"

# `PoseFormerV2.mixed_attention` is 'broadcast' on a CPU when the mixed blocks see at most
# this many tokens (kept frames + kept coefficients), else 'dot'.
MIXED_BROADCAST_MAX_TOKENS = 8


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
  in `SPATIAL_ATTENTION` form and its mixed blocks' attention as broadcast products when
  they see at most `MIXED_BROADCAST_MAX_TOKENS` tokens (same parameters, same values to
  float rounding)."""
  if jax.default_backend() != "cpu" or not hasattr(model, "spatial_attention"):
    return model
  tokens = int(model.kept_frames) + int(model.kept_coeffs)
  mixed = "broadcast" if tokens <= MIXED_BROADCAST_MAX_TOKENS else "dot"
  return model.clone(spatial_attention=SPATIAL_ATTENTION, mixed_attention=mixed)


def train_microbatches(model_cfg, process_batch: int, process_devices: int) -> int:
  """Microbatches per train step when ``train.grad_accum_steps`` is 0 (automatic).

  1 off a CPU. On a CPU, the fewest parts, a power of 2 that divides each device's
  rows, whose work each stays within `MICROBATCH_GFLOP` (`flops.matmul_flops` x 3 per
  sample). ``process_batch``: this process's share of the global batch, over its
  ``process_devices`` devices. E.g. 243_27_27 at 256: 4; 81_9_9 at 256: 2; every
  variant at 64 and the four small ones at 256: 1.
  """
  if jax.default_backend() != "cpu":
    return 1
  work = 3 * flops.matmul_flops(model_cfg) / 1e9 * process_batch
  per_device = process_batch // max(int(process_devices), 1)
  parts = 1
  while work / parts > MICROBATCH_GFLOP and per_device % (2 * parts) == 0:
    parts *= 2
  return parts
