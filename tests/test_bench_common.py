"""The benchmarks' process-per-framework contender (`benchmarks/common.Remote`): the call is
built and timed in a process of its own, after its set-up, and its errors reach the parent."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import common  # noqa: E402  (benchmarks/common.py)


def _mark_setup():
  os.environ["BENCH_TEST_SETUP"] = "ran"


def _build_sleeper(seconds: float):
  import time

  calls = []

  def call():
    calls.append(1)
    time.sleep(seconds)

  return call, {"pid": os.getpid(), "setup": os.environ.get("BENCH_TEST_SETUP", "")}


def _build_failing():
  raise ValueError("no such variant")


def test_remote_builds_after_its_setup_and_times_in_its_own_process():
  with common.Remote(_build_sleeper, 0.02, setup=_mark_setup) as remote:
    assert remote.info["pid"] != os.getpid()
    assert remote.info["setup"] == "ran"
    per_call = remote.timed(3)
    assert 0.02 <= per_call < 0.2
    t = common.alternate({"a": remote, "b": lambda: None}, repeats=2, target_s=0.05, settle=1)
  assert t["a"]["calls"] >= 2 and 0.02 <= t["a"]["median"] < 0.2
  assert "BENCH_TEST_SETUP" not in os.environ  # the set-up ran there, not here


def test_an_error_in_the_remote_process_is_raised_here_with_its_traceback():
  with pytest.raises(RuntimeError, match="no such variant"):
    common.Remote(_build_failing)
