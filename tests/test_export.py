"""Export for deployment: ONNX (jax2onnx, run in onnxruntime) and StableHLO match the JAX forward."""

from __future__ import annotations

import numpy as np
import pytest

from poseformer_jax import export
from poseformer_jax.lifter import Lifter
from test_lift_wild import write_checkpoint

from conftest import require


@pytest.fixture(scope="module")
def lifter(tmp_path_factory) -> Lifter:
  return Lifter(str(write_checkpoint(tmp_path_factory.mktemp("export") / "ckpt")))


def _windows(lifter, batch: int, seed: int = 3) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.normal(0, 0.3, (batch, lifter.num_frames, 17, 2)).astype(np.float32)


def _reference(lifter, x):
  """The JAX forward: the network on the windows and on their mirror image, averaged."""
  from poseformer_jax.data import skeleton
  perm = skeleton.flip_permutation(17, skeleton.JOINTS_LEFT, skeleton.JOINTS_RIGHT)
  mirrored = x[:, :, perm] * np.array([-1, 1], np.float32)
  apply = lambda v: np.asarray(lifter.model.apply({"params": lifter.params}, v))[:, 0]  # noqa: E731
  y, ym = apply(x), apply(mirrored)
  out = (y + ym[:, perm] * np.array([-1, 1, 1], np.float32)) / 2
  out[:, 0] = 0
  return out


def test_onnx_runs_in_onnxruntime_like_jax(lifter, tmp_path):
  require("jax2onnx", "pip install -e '.[export]'")
  onnx = require("onnx", "pip install -e '.[export]'")
  ort = require("onnxruntime", "pip install -e '.[export]'")
  path = tmp_path / "m.onnx"
  export.export_onnx(lifter, path)
  model = onnx.load(str(path))
  meta = {p.key: p.value for p in model.metadata_props}
  assert meta["num_frames"] == "27" and meta["flip"] == "True"
  runner = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
  assert [i.name for i in runner.get_inputs()] == ["windows"]
  for batch in (1, 5):  # the batch axis is dynamic
    x = _windows(lifter, batch)
    got = runner.run(None, {"windows": x})[0]
    assert got.shape == (batch, 17, 3)
    assert np.abs(got - _reference(lifter, x)).max() <= 1e-5


def test_stablehlo_round_trip(lifter, tmp_path):
  import jax
  path = tmp_path / "m.stablehlo"
  export.export_stablehlo(lifter, path)
  exported = jax.export.deserialize(path.read_bytes())
  for batch in (2, 7):
    x = _windows(lifter, batch)
    assert np.abs(np.asarray(exported.call(x)) - _reference(lifter, x)).max() <= 1e-5
  export.export_stablehlo(lifter, tmp_path / "m.mlir", batch=4)
  assert "stablehlo" in (tmp_path / "m.mlir").read_text()[:100000]


def test_export_cli(tmp_path, capsys):
  out = tmp_path / "m.stablehlo"
  directory = tmp_path / "ck"
  write_checkpoint(directory)
  assert export.main([f"--checkpoint={directory}", "--format=stablehlo",
                      f"--output={out}"]) == 0
  assert "max |stablehlo - JAX|" in capsys.readouterr().out and out.is_file()
  before = out.read_bytes()
  for argv, needle in [
      ([f"--checkpoint={directory}", f"--output={out}"], "already exists"),
      ([f"--checkpoint={directory}", "--format=tflite", f"--output={out}"],
       "flag --format=tflite: value should be one of <onnx|stablehlo>"),
      ([f"--checkpoint={directory}"], "--output is required"),
      ([f"--checkpoint={tmp_path / 'nope'}", f"--output={tmp_path / 'x.onnx'}"], "nope"),
      ([f"--checkpoint={directory}", "--format=onnx", f"--output={tmp_path / 'x.bin'}"],
       "must end with .onnx"),
  ]:
    assert export.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, (argv, err)
  assert out.read_bytes() == before
  assert not (tmp_path / "x.onnx").exists()
