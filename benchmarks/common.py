"""Shared helpers of the benchmark scripts: flags, threads, same-weight JAX/PyTorch models,
the one timing helper (`timed`) and what is built on it, tables and JSON.

Fairness rules every script follows:

* same weights: a random-weight PyTorch reference (`tests/torch_reference.py`,
  state-dict compatible with the official model) converted with
  `poseformer_jax.convert.torch_to_flax`;
* same inputs, already in each framework's memory before timing;
* same threads: ``torch.set_num_threads(cores)``; XLA's CPU runtime sizes
  its intra-op pool to the same core count (``os.sched_getaffinity``);
* PyTorch's OpenMP pool waits passively (``OMP_WAIT_POLICY=PASSIVE``, see below);
* alternated: each repeat times every contender once, in turn, and the
  median over repeats is reported, so load from other processes on a shared
  machine hits both sides alike. Ratios come from the same run.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # torch_reference, torch_checkpoints

# PyTorch's OpenMP threads spin-wait between ops by default; on a CPU shared with other
# processes (this machine's case) a descheduled spinning thread stalls every op, and the
# 2-thread reference ran 8x slower than with 1 thread. Passive waiting removes that artefact
# (must be set before torch is imported; an explicit setting in the environment wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from poseformer_jax import cli, config_lib, convert, host_memory  # noqa: E402
from poseformer_jax import model as model_lib  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
VARIANTS = list(config_lib.H36M_VARIANTS)        # the six published Human3.6M variants
PAPER_MFLOPS = config_lib.PAPER_MFLOPS            # per output frame, used to cap batch sizes
# Outside the repository, so the cache never shows up as untracked files.
CACHE_DIR = Path(os.environ.get("POSEFORMER_JAX_CACHE",
                                Path.home() / ".cache" / "poseformer-jax" / "xla"))


def enable_compilation_cache(path: str | os.PathLike | None = None) -> None:
  """Persistent XLA compilation cache (second runs skip compiling)."""
  jax.config.update("jax_compilation_cache_dir", str(path or CACHE_DIR))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def setup_torch(threads: int = CORES):
  import torch
  torch.set_num_threads(threads)
  return torch


def machine() -> dict:
  info = {"cpu": _cpu_name(), "cores": CORES, "platform": platform.platform(),
          "python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(), "devices": jax.device_count(),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
  try:
    import torch
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
  except ImportError:
    pass
  try:
    info["loadavg_start"] = os.getloadavg()[0]
  except OSError:
    pass
  return info


def _cpu_name() -> str:
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def model_config(variant: str, dtype: str = "float32"):
  cfg = config_lib.base_config()
  config_lib.set_variant(cfg, variant)
  cfg.model.dtype = dtype
  return cfg


def reference_pair(variant: str, seed: int = 0, dtype: str = "float32", torch_model: bool = True):
  """(torch reference in eval mode or None, flax model, flax params): the SAME random weights."""
  from torch_checkpoints import random_reference  # needs torch (optional)
  cfg = model_config(variant, dtype)
  m = cfg.model
  ref = random_reference(m.num_frames, m.kept_frames, m.kept_coeffs, seed=seed)
  state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
  params, unexpected = convert.torch_to_flax(state)
  assert not unexpected, unexpected
  params = jax.tree.map(lambda a: jax.device_put(np.asarray(a, np.float32)), params)
  model = model_lib.from_config(m)
  return (ref if torch_model else None), model, params


def inputs(variant: str, batch: int, seed: int = 0):
  cfg = model_config(variant)
  return np.random.default_rng(seed).uniform(
      -1, 1, size=(batch, cfg.model.num_frames, cfg.model.num_joints, 2)).astype(np.float32)


def capped_batch(variant: str, batch: int, max_gflop: float, passes: float = 1.0) -> int:
  """`batch` halved until batch x passes x the paper's forward GFLOPs per frame <= max_gflop."""
  while batch > 1 and batch * passes * PAPER_MFLOPS[variant] / 1e3 > max_gflop:
    batch //= 2
  return batch


def timed(fn: Callable[[], Any], calls: int = 1, warmup: int = 0,
          wait: Callable[[Any], Any] | None = None) -> float:
  """THE timing loop: seconds per call of `fn` over `calls` calls after `warmup` untimed ones.

  `wait(result)` (e.g. ``jax.block_until_ready``), when given, runs on the
  last result before the clock starts and before it stops, so asynchronously
  dispatched work is counted; without it `fn` must block itself.
  """
  result = None
  for _ in range(warmup):
    result = fn()
  if wait is not None and warmup:
    wait(result)
  t0 = time.perf_counter()
  for _ in range(calls):
    result = fn()
  if wait is not None:
    wait(result)
  return (time.perf_counter() - t0) / calls


def best_of(fn: Callable[[], Any], repeats: int) -> float:
  """Seconds of the fastest of `repeats` calls (the least disturbed one on a shared machine)."""
  return min(timed(fn) for _ in range(repeats))


def calibrate(fn: Callable[[], object], target_s: float) -> int:
  """Calls per timed sample so that one sample lasts about target_s (fn already warm)."""
  return max(1, int(round(target_s / max(timer(fn)(1), 1e-6))))


def timer(fn) -> Callable[[int], float]:
  """`calls` -> seconds per call of `fn`: `timed` here, or in its process for a `Remote`."""
  return fn.timed if isinstance(fn, Remote) else functools.partial(timed, fn)


class Remote:
  """A contender that runs in a process of its own, timed there (`alternate` takes it like a
  blocking callable): each framework then has its process to itself, as its users run it,
  with its own allocator state and process-wide settings.

  ``build(*args)``, a module-level function, runs in the new process after ``setup()``
  and returns ``(call, info)``: the blocking call to time and a picklable dict (kept as
  `info`). Use as a context manager; the process ends with it.
  """

  def __init__(self, build: Callable, *args, setup: Callable[[], None] | None = None):
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited JAX backend
    self._conn, child = ctx.Pipe()
    self._process = ctx.Process(target=_serve, args=(child, setup, build, args), daemon=True)
    self._process.start()
    child.close()
    try:
      self.info = self._reply()
    except RuntimeError:
      self.close()
      raise

  def __call__(self) -> None:
    self.timed(1)

  def timed(self, calls: int) -> float:
    """Seconds per call over `calls` calls, timed in the process (`timed`)."""
    self._conn.send(calls)
    return self._reply()

  def _reply(self):
    try:
      status, value = self._conn.recv()
    except EOFError:
      self._process.join(5)
      raise RuntimeError(f"benchmark process exited (status {self._process.exitcode})") from None
    if status == "error":
      raise RuntimeError(f"in the benchmark process:\n{value}")
    return value

  def close(self) -> None:
    if self._process.is_alive():
      self._conn.send(None)
      self._process.join(30)
    self._conn.close()

  def __enter__(self) -> "Remote":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _serve(conn, setup, build, args) -> None:
  """`Remote`'s process: builds the call, then times it on request until told to stop."""
  try:
    if setup is not None:
      setup()
    call, info = build(*args)
    conn.send(("ok", info))
    while (calls := conn.recv()) is not None:
      conn.send(("ok", timed(call, calls)))
  except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
    conn.send(("error", traceback.format_exc()))


def jax_process(cache: bool = True) -> None:
  """`Remote` set-up of a process that runs JAX as `train.py` and `eval.py` do: their host
  memory policy (`poseformer_jax.host_memory`, set before the backend starts) and the
  compilation cache."""
  host_memory.configure(config_lib.base_config().host_memory)
  if cache:
    enable_compilation_cache()


def torch_process() -> None:
  """`Remote` set-up of a PyTorch process: `setup_torch`'s threads, malloc as it is."""
  setup_torch()


def jax_remote(build: Callable, *args, cache: bool = True) -> Remote:
  """`build(*args)` in a JAX process of its own (`jax_process`)."""
  return Remote(build, *args, setup=functools.partial(jax_process, cache))


def torch_remote(build: Callable, *args) -> Remote:
  """`build(*args)` in a PyTorch process of its own (`torch_process`)."""
  return Remote(build, *args, setup=torch_process)


def alternate(fns: dict[str, Callable[[], object]], repeats: int = 5, target_s: float = 0.3,
              warmup: int = 1, settle: int = 0) -> dict[str, dict]:
  """Times each fn (blocking calls, or `Remote` contenders) in turn, `repeats` rounds;
  seconds per call.

  ``settle`` untimed calls open each turn, so the timed ones follow a call of the
  same fn, as in a loop of training steps, not one of the other side: on this
  host a step that follows the other framework's step faults its memory in at
  ~20 us a page instead of ~2.5 (`benchmarks/README.md`, "Training step with
  automatic microbatches").

  Returns {name: {'median': s, 'min': s, 'samples': [...], 'calls': n}}.
  """
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  timers = {k: timer(fn) for k, fn in fns.items()}
  calls = {k: calibrate(fn, target_s) for k, fn in fns.items()}
  samples: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      for _ in range(settle):
        fn()
      samples[k].append(timers[k](calls[k]))
  return {k: {"median": statistics.median(v), "min": min(v), "samples": v, "calls": calls[k]}
          for k, v in samples.items()}


def ratio_spread(timings: dict[str, dict], fast: str = "jax", slow: str = "torch") -> str:
  """The lowest and highest per-round speed ratio slow_time / fast_time of `alternate`'s
  result, e.g. '0.95-1.12x': each round timed both sides back to back."""
  ratios = [s / f for f, s in zip(timings[fast]["samples"], timings[slow]["samples"])]
  return f"{min(ratios):.2f}-{max(ratios):.2f}x"


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
  """A GitHub-markdown table (also readable in a terminal)."""
  cells = [[_fmt(c) for c in r] for r in rows]
  widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
            for i, h in enumerate(headers)]
  line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
  out = [title, ""] if title else []
  out += [line(headers), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
  out += [line(r) for r in cells]
  return "\n".join(out)


def report(headers: list[str], rows: list[list], title: str, json_path: str | None,
           payload: dict) -> int:
  """Prints the results table (`table`), writes `payload` as JSON when asked; exit status 0."""
  print()
  print(table(headers, rows, title=title))
  write_json(json_path, payload)
  return 0


def _fmt(c) -> str:
  if isinstance(c, float):
    if c != c:
      return "-"
    if abs(c) >= 100:
      return f"{c:,.0f}"
    if abs(c) >= 10:
      return f"{c:.1f}"
    return f"{c:.2f}"
  return str(c)


def write_json(path: str | None, payload: dict) -> None:
  if not path:
    return
  payload = dict(payload)
  payload.setdefault("machine", machine())
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w") as f:
    json.dump(payload, f, indent=2, default=float)
    f.write("\n")
  print(f"wrote {path}")


def benchmark_flags(variants: list[str] | None = None, target: float | None = None,
                    max_work: tuple[float, str] | None = None) -> flags.FlagValues:
  """A script's own absl flags with the common ones: --json, --quick, --repeats, --no-cache;
  with defaults given also --variants (comma-separated), --target (seconds per timed sample)
  and --max-work ((default, what it caps))."""
  fv = flags.FlagValues()
  flags.DEFINE_string("json", None, "Write the results to this JSON file.", flag_values=fv)
  flags.DEFINE_bool("quick", False, "Fast smoke mode (fewer cases, repeats).", flag_values=fv)
  flags.DEFINE_integer("repeats", None, "Alternated rounds (median).", flag_values=fv)
  flags.DEFINE_bool("no-cache", False, "Do not use the persistent compilation cache "
                    "(~/.cache/poseformer-jax/xla, or $POSEFORMER_JAX_CACHE).", flag_values=fv)
  if variants is not None:
    flags.DEFINE_list("variants", variants, "Published variants F_f_n.", flag_values=fv)
  if target is not None:
    flags.DEFINE_float("target", target, "Seconds per timed sample.", flag_values=fv)
  if max_work is not None:
    flags.DEFINE_float("max-work", max_work[0], f"Cap on {max_work[1]}.", flag_values=fv)
  return fv


def parse_flags(fv: flags.FlagValues, argv, doc: str) -> int | None:
  """Parses a script's flags (`cli.parse_command_flags`: None, or the exit status to return);
  enables the compilation cache unless --no-cache."""
  status = cli.parse_command_flags(fv, argv, doc)
  if status is None and "no-cache" in fv and not fv["no-cache"].value:
    enable_compilation_cache()
  return status
