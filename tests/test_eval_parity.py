"""eval.py's protocol on a converted PyTorch checkpoint == a direct PyTorch computation, upstream style."""

import subprocess
import sys
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import require

torch = require("torch")

import convert_torch_weights  # noqa: E402
from poseformer_jax import config_lib, evaluation  # noqa: E402
from poseformer_jax.data.dataset import load_sequences  # noqa: E402
from torch_checkpoints import random_reference, save_official  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _upstream_style_predictions(model, kp2d, pad, info):
  """Whole sequence, windows cut in a Python loop from an edge-padded array, flip TTA (as upstream)."""
  padded = np.pad(kp2d, ((pad, pad), (0, 0), (0, 0)), mode="edge")
  windows = np.stack([padded[i:i + 2 * pad + 1] for i in range(len(kp2d))])
  flipped = windows.copy()
  flipped[..., 0] *= -1
  left, right = list(info.kps_left), list(info.kps_right)
  flipped[:, :, left + right] = flipped[:, :, right + left]
  with torch.no_grad():
    out = model(torch.from_numpy(windows.astype(np.float32))).numpy()[:, 0]
    out_f = model(torch.from_numpy(flipped.astype(np.float32))).numpy()[:, 0]
  out_f[..., 0] *= -1
  jl, jr = list(info.joints_left), list(info.joints_right)
  out_f[:, jl + jr] = out_f[:, jr + jl]
  return (out + out_f) / 2


def test_eval_matches_direct_torch_per_action(tmp_path, synthetic_h36m_root):
  ref = random_reference(27, 3, 3, seed=21)
  save_official(ref, tmp_path / "ck.bin")
  assert convert_torch_weights.main(["--input", str(tmp_path / "ck.bin"), "--frames", "27",
                                     "--output", str(tmp_path / "ckpt")]) == 0
  config = config_lib.base_config()
  config_lib.set_variant(config, "27_3_3")
  config.data.root = str(synthetic_h36m_root)
  config.data.keypoints = "gt"
  config.eval.batch_size = 64
  with jax.default_matmul_precision("highest"):
    ours = evaluation.run_eval(config, tmp_path / "ckpt", progress=False)

  sequences, info = load_sequences(config.data, "test")
  per_action: dict[str, list] = {}
  for seq in sequences:
    pred = _upstream_style_predictions(ref, seq.keypoints_2d, 13, info)
    target = seq.positions_3d.copy()
    target[:, 0] = 0
    err = np.linalg.norm(pred - target, axis=-1).mean(-1)  # (T,) metres
    per_action.setdefault(seq.action.split(" ")[0], []).append(err)
  expected = {a: 1000 * np.concatenate(e).mean() for a, e in per_action.items()}
  assert set(ours["actions"]) == set(expected)
  for action, p1 in expected.items():
    assert ours["actions"][action]["p1"] == pytest.approx(p1, abs=1e-3), action
  assert ours["average"]["p1"] == pytest.approx(np.mean(list(expected.values())), abs=1e-3)
  assert ours["average"]["p1"] > 10  # random weights: far from the targets, a real signal


def test_eval_cli_writes_json_and_table(tmp_path, synthetic_h36m_root):
  ref = random_reference(27, 1, 3, seed=5)
  save_official(ref, tmp_path / "ck.bin")
  assert convert_torch_weights.main(["--input", str(tmp_path / "ck.bin"), "--frames", "27",
                                     "--output", str(tmp_path / "ckpt")]) == 0
  out = tmp_path / "results.json"
  proc = subprocess.run(
      [sys.executable, "eval.py", "--config=configs/h36m.py:27_1_3", f"--checkpoint={tmp_path / 'ckpt'}",
       f"--config.data.root={synthetic_h36m_root}", "--config.data.keypoints=gt",
       "--config.eval.batch_size=128", f"--output={out}"],
      capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr
  results = json.loads(out.read_text())
  assert set(results) >= {"actions", "average"}
  for values in [results["average"], *results["actions"].values()]:
    assert set(values) >= {"p1", "p2", "p3", "mpjve"}
    assert values["p2"] <= values["p1"] + 1e-6
  assert f"{results['average']['p1']:.2f}" in proc.stdout
  # A missing checkpoint is a one-line error.
  proc = subprocess.run([sys.executable, "eval.py", f"--checkpoint={tmp_path / 'nope'}",
                         f"--config.data.root={synthetic_h36m_root}"],
                        capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "no such checkpoint directory" in proc.stderr
