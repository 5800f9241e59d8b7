"""The absl command lines of the converter, the data tools and the FLOPs table.

Each takes its flags on its own `absl.flags.FlagValues` (so they never clash
when imported together), answers `--help` with status 0, and turns a bad
command line into one ``error: bad command line: ...`` line with status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import convert_torch_weights
from poseformer_jax import flops, load_checkpoint
from poseformer_jax.data import prepare_h36m, synthetic, synthetic_3dhp

from conftest import require

REPO = Path(__file__).resolve().parent.parent
MAINS = {"convert": convert_torch_weights.main, "prepare": prepare_h36m.main,
         "synthetic": synthetic.main, "synthetic_3dhp": synthetic_3dhp.main, "flops": flops.main}


def one_error_line(capsys) -> str:
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: bad command line: "), err
  return lines[0]


@pytest.mark.parametrize("name", list(MAINS))
def test_help_and_unknown_flags(name, capsys):
  assert MAINS[name](["--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith(sys.modules[MAINS[name].__module__].__doc__.splitlines()[0])
  assert "flags:" in out
  assert MAINS[name](["--no-such-flag=1"]) == 2
  assert "Unknown command line flag 'no-such-flag'" in one_error_line(capsys)


@pytest.mark.parametrize("name, args, needle", [
    ("convert", ["--input=a.pth"], "--frames and --output are required"),
    ("convert", ["--input=a", "--output=b", "--frames=abc"], "flag --frames=abc"),
    ("convert", ["--input=a", "--output=b", "--frames=27", "--units=cm"], "flag --units=cm"),
    ("prepare", [], "--root is required"),
    ("prepare", ["--root=x", "stray"], "unexpected arguments: stray"),
    ("synthetic", ["--root=x", "--frames=1.5"], "flag --frames=1.5"),
    ("synthetic_3dhp", ["--root=x", "--cameras=a,b"], "--cameras must be comma-separated numbers"),
    ("flops", ["--batch=0"], "flag --batch=0"),
])
def test_bad_command_lines_are_one_line(name, args, needle, capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert MAINS[name](args) == 2
  assert needle in one_error_line(capsys)
  assert not os.listdir(tmp_path)                       # nothing written


def test_convert_runs_from_any_directory(tmp_path):
  """The default --config is the repository's configs/h36m.py, not ./configs/h36m.py."""
  require("torch")
  from torch_checkpoints import random_reference, save_official
  save_official(random_reference(27, 1, 3), tmp_path / "ck.bin")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(REPO / "convert_torch_weights.py"), "--input=../ck.bin",
                        "--frames=27", "--output=out"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "converted ../ck.bin" in out.stdout
  model, _, config = load_checkpoint(elsewhere / "out")
  assert model.num_frames == 27 and config.data.dataset == "h36m"


def test_train_default_config_resolves_from_any_directory(tmp_path):
  """train.py's default --config is the repository's configs/default.py, from any cwd."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(REPO / "train.py"), f"--workdir={tmp_path / 'w'}",
                        "--config.train.epochs=0"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
  # The config loaded (its validation ran); without the fix: "configs/default.py: no such file".
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1] == "error: train.epochs must be >= 1, got 0"
