"""Host memory policy of a process: keep the memory XLA:CPU frees for its next program run.

XLA:CPU allocates every buffer of a program run (one large block of temporaries, the
outputs) with ``malloc`` and frees them at the end. glibc serves blocks that large with
fresh ``mmap`` pages, or from per-thread arenas that it trims, and gives them back to the
kernel on ``free``; the next run then faults every page in again, zero-filled: 198,000
page faults per train step for 243_27_27 at batch 64 (0.5-0.7 s of kernel time in a 2 s
step on a 2-core virtual machine). Told to keep freed memory (one arena, no ``mmap``'d
blocks, no trimming), glibc hands the same pages back at the next step and the step
faults none: 243_27_27 at 64 1.95-2.0 -> 1.6-1.67 s, 27_3_3 at 256 0.83 -> 0.72-0.74 s
(`benchmarks/README.md`, "Training step, each framework in its own process"). Now and
then glibc still places a block anew and that run faults it in (a small probe: most runs
none, some 4,096-8,192 of its 8,192 pages), so it is a large saving, not a guarantee.

It is process-wide and has to be set before JAX starts its backend (threads that have
already allocated keep their own arenas), so entry points call `configure` first in
``main``, from the config's ``host_memory``:

* ``'auto'`` (default): keep, when the process will run on the CPU only (``JAX_PLATFORMS``
  names only ``cpu``, or no accelerator plugin for JAX is installed) and the C library is
  glibc; else the system's policy. On an accelerator host buffers live on the device and
  the host's input pipeline threads are better served by glibc's many arenas.
* ``'keep'``: keep wherever glibc is the C library.
* ``'system'``: leave malloc as it is.

The cost: the process's resident memory stays at its peak (plus fragmentation, up to
~1.5x the step's working set was measured), which a training or evaluation run reaches
at its first step anyway.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform

import jax  # importing jax does not start its backend

from poseformer_jax.errors import ConfigError

MODES = ("auto", "keep", "system")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_INT_MAX = 2**31 - 1


def configure(mode: str) -> bool:
  """Applies the host memory policy `mode` (see the module docstring) to this process.

  Call it before anything starts JAX's backend. Returns whether freed memory is kept.
  Raises ConfigError for an unknown mode.
  """
  if not wants_kept_memory(mode, platforms(), accelerator_plugins()):
    return False
  return keep_freed_memory()


def wants_kept_memory(mode: str, platforms: list[str], plugins: list[str]) -> bool:
  """Whether `mode` keeps freed memory in a process that will use JAX `platforms` (its
  ``jax_platforms`` setting, [] when unset) with accelerator `plugins` installed."""
  if mode not in MODES:
    raise ConfigError(f"host_memory must be one of {', '.join(MODES)}, got {mode!r}")
  if mode != "auto":
    return mode == "keep"
  if platforms:
    return set(platforms) == {"cpu"}
  return not plugins


def keep_freed_memory() -> bool:
  """Makes glibc keep freed memory for reuse: one arena, no ``mmap``'d blocks, no trimming.

  Returns False (and changes nothing) where the C library is not glibc.
  """
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return False
  try:
    mallopt = ctypes.CDLL(None).mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  # mallopt returns 1 on success; all three or the policy is not what the docstring says.
  return all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _INT_MAX)))


def platforms() -> list[str]:
  """The platforms JAX is told to use (``JAX_PLATFORMS`` / ``jax_platforms``), [] if unset.

  Read without starting JAX's backend.
  """
  value = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
  return [p.strip() for p in str(value).split(",") if p.strip()]


def accelerator_plugins() -> list[str]:
  """Names of the installed PJRT plugins JAX would try for an accelerator (CUDA, ROCm,
  TPU, ...), found without loading them."""
  names = []
  try:
    import jax_plugins  # the namespace package JAX's GPU plugins install into
    names += [m.name for m in pkgutil.iter_modules(jax_plugins.__path__)]
  except ImportError:
    pass
  names += [ep.name for ep in importlib.metadata.entry_points(group="jax_plugins")]
  if importlib.util.find_spec("libtpu") is not None:
    names.append("libtpu")
  return sorted(set(names))
