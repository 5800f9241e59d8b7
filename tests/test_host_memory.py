"""The host memory policy: which processes keep freed memory, and that it stops XLA:CPU's
page faults (a program run after the first faults none of its temporaries in again)."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from poseformer_jax import config_lib, host_memory
from poseformer_jax.errors import ConfigError

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize("mode,platforms,plugins,kept", [
    ("auto", [], [], True),                         # plain CPU install
    ("auto", [], ["xla_cuda12"], False),            # a GPU plugin: buffers live on the GPU
    ("auto", ["cpu"], ["xla_cuda12"], True),        # told to run on the CPU anyway
    ("auto", ["cuda", "cpu"], [], False),
    ("auto", [], ["libtpu"], False),
    ("keep", ["cuda"], ["xla_cuda12"], True),
    ("system", [], [], False),
])
def test_auto_keeps_freed_memory_only_on_cpu_only_hosts(mode, platforms, plugins, kept):
  assert host_memory.wants_kept_memory(mode, platforms, plugins) is kept


def test_unknown_mode_is_a_config_error():
  with pytest.raises(ConfigError, match="host_memory must be one of auto, keep, system"):
    host_memory.configure("always")


def test_the_default_config_asks_for_auto():
  assert config_lib.base_config().host_memory == "auto"


_PROBE = textwrap.dedent("""
    import resource, sys
    from poseformer_jax import host_memory
    kept = host_memory.configure(sys.argv[1])
    import jax, jax.numpy as jnp

    @jax.jit
    def f(x):  # ~48 MB of temporaries per run: x is (2048, 2048) float32
      y = jnp.sin(x) @ jnp.cos(x)
      return jnp.sum(jnp.tanh(y) * x)

    x = jnp.ones((2048, 2048), jnp.float32) * 1e-3
    for _ in range(3):
      f(x).block_until_ready()
    faults = []
    for _ in range(8):
      r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      f(x).block_until_ready()
      faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
    print(kept, min(faults))
""")


@pytest.mark.skipif(not GLIBC, reason="the policy applies to glibc only")
def test_kept_memory_stops_the_page_faults_of_repeated_runs(tmp_path):
  def faults(mode):
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    kept, fewest = out.stdout.split()
    return kept == "True", int(fewest)

  kept, with_policy = faults("keep")
  assert kept
  not_kept, without = faults("system")
  assert not not_kept
  # Without the policy every run faults its ~48 MB of temporaries in again (> 8,000
  # pages of 4 KiB, the fewest of 8 runs); with it runs reuse the pages of the run before
  # (most fault none; glibc still places a block anew now and then: 4,096-8,192 faults).
  assert without > 8_000, without
  assert with_policy < without / 20, (with_policy, without)
