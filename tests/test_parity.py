"""Parity with PyTorch: official-format checkpoint -> converter -> Flax == PyTorch within 1e-5 m."""

import pickle
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import require

torch = require("torch")

import convert_torch_weights  # noqa: E402  (root entry point)
from poseformer_jax import load_checkpoint  # noqa: E402
from torch_checkpoints import VARIANTS, random_reference, save_official  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5  # metres, max absolute difference, float32


def _convert(src, out, frames, extra=()):
  rc = convert_torch_weights.main(["--input", str(src), "--frames", str(frames), "--output", str(out),
                                   "--config", str(ROOT / "configs/h36m.py"), *extra])
  assert rc == 0


def _flax_forward(directory, x):
  model, params, config = load_checkpoint(directory)
  with jax.default_matmul_precision("highest"):
    return np.asarray(model.apply({"params": params}, x)), config


def _torch_forward(model, x):
  with torch.no_grad():
    return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parity_all_variants(name, tmp_path):
  frames, kept_frames, kept_coeffs = VARIANTS[name]
  # A seed fixed per variant (hash() of a str changes with PYTHONHASHSEED, run to run).
  ref = random_reference(frames, kept_frames, kept_coeffs, seed=zlib.crc32(name.encode()) % 1000)
  save_official(ref, tmp_path / "ckpt.bin", plain=name.startswith("3dhp"))
  _convert(tmp_path / "ckpt.bin", tmp_path / "out", frames)
  x = np.random.default_rng(0).uniform(-1, 1, size=(3, frames, 17, 2)).astype(np.float32)
  ours, config = _flax_forward(tmp_path / "out", x)
  theirs = _torch_forward(ref, x)
  err = np.abs(ours - theirs).max()
  print(f"{name}: max |flax - torch| = {err:.3g} m (output scale {np.abs(theirs).max():.3g})")
  assert err < TOL
  assert (config.model.num_frames, config.model.kept_frames, config.model.kept_coeffs) == (
      frames, kept_frames, kept_coeffs)
  assert np.abs(theirs).max() > 0.1  # a non-trivial output


@pytest.mark.parametrize("mismatch", [{"gelu_approximate": "tanh"}, {"split": 3}])
def test_parity_detects_deliberate_mismatch(mismatch, tmp_path):
  """The approximate GELU, or a MixedBlock split at the freq/time boundary (n=3 for 27_1_3,
  instead of T//2=2), must make the parity check fail."""
  good = random_reference(27, 1, 3, seed=3)
  bad = random_reference(27, 1, 3, seed=3, **mismatch)
  bad.load_state_dict(good.state_dict())
  save_official(good, tmp_path / "ckpt.bin", plain=True)
  _convert(tmp_path / "ckpt.bin", tmp_path / "out", 27)
  x = np.random.default_rng(1).uniform(-1, 1, size=(4, 27, 17, 2)).astype(np.float32)
  ours, _ = _flax_forward(tmp_path / "out", x)
  assert np.abs(ours - _torch_forward(good, x)).max() < TOL
  err_bad = np.abs(ours - _torch_forward(bad, x)).max()
  print(f"{mismatch}: max difference {err_bad:.3g} m")
  assert err_bad > TOL  # the 1e-5 parity check would fail


# --- converter errors --------------------------------------------------------

def _run_cli(*args):
  proc = subprocess.run([sys.executable, str(ROOT / "convert_torch_weights.py"), *map(str, args)],
                        capture_output=True, text=True, cwd=ROOT)
  return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def official_27_1_3(tmp_path_factory):
  path = tmp_path_factory.mktemp("ck") / "27_243_45.2.bin"
  save_official(random_reference(27, 1, 3), path)
  return path


def test_cli_errors_are_one_line(tmp_path, official_27_1_3):
  junk = tmp_path / "junk.bin"
  junk.write_bytes(np.random.default_rng(0).bytes(5000))
  truncated = tmp_path / "truncated.bin"
  truncated.write_bytes(official_27_1_3.read_bytes()[:300_000])
  cases = {
      "not a checkpoint": (junk, 27, "not a PyTorch checkpoint"),
      "truncated": (truncated, 27, "truncated or corrupt"),
      "frames too small": (official_27_1_3, 0, "--frames must be positive"),
  }
  for label, (src, frames, message) in cases.items():
    rc, out, err = _run_cli("--input", src, "--frames", frames, "--output", tmp_path / label)
    assert rc == 2, (label, err)
    assert message in err, (label, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (label, err)
    assert not (tmp_path / label).exists()


def test_frames_smaller_than_kept_frames(tmp_path):
  src = tmp_path / "81_9_9.bin"
  save_official(random_reference(81, 9, 9), src)
  rc, _, err = _run_cli("--input", src, "--frames", 5, "--output", tmp_path / "out")
  assert rc == 2 and "smaller than the checkpoint's kept frames (9)" in err


def test_other_architecture_lists_keys(tmp_path):
  from poseformer_jax import convert, torch_reader
  ref = random_reference(27, 3, 3)
  state = {f"module.{k}": v for k, v in ref.state_dict().items()}
  del state["module.blocks.2.mlp2.fc1.weight"]
  state["module.blocks.2.extra.weight"] = torch.zeros(3, 3)
  torch.save({"model_pos": state}, tmp_path / "a.bin")
  with pytest.raises(convert.ConversionError) as info:
    convert.convert(torch_reader.load(tmp_path / "a.bin"), 27, path="a.bin")
  msg = str(info.value)
  assert "missing: ['mixed_block_2']['mlp2']['mlp']['fc1']['kernel']" in msg
  assert "unexpected: blocks.2.extra.weight" in msg
  # A PoseFormer (v1) style or unrelated dict is rejected up front.
  torch.save({"model_pos": {"module.Spatial_patch_to_embedding.weight": torch.zeros(32, 2)}},
             tmp_path / "b.bin")
  rc, _, err = _run_cli("--input", tmp_path / "b.bin", "--frames", 27, "--output", tmp_path / "o")
  assert rc == 2 and "not a PoseFormerV2 checkpoint (missing Spatial_pos_embed" in err
  # Shapes that disagree with each other.
  state = {f"module.{k}": v for k, v in ref.state_dict().items()}
  state["module.head.1.weight"] = torch.zeros(48, 1088)
  torch.save({"model_pos": state}, tmp_path / "c.bin")
  with pytest.raises(convert.ConversionError, match=r"shape mismatch: \['head'\]\['kernel'\]"):
    convert.convert(torch_reader.load(tmp_path / "c.bin"), 27)


def test_existing_output_is_not_overwritten(tmp_path, official_27_1_3):
  _convert(official_27_1_3, tmp_path / "out", 27)
  rc, _, err = _run_cli("--input", official_27_1_3, "--frames", 27, "--output", tmp_path / "out")
  assert rc == 2 and "already holds a checkpoint" in err


def test_reader_never_runs_pickled_code(tmp_path):
  from poseformer_jax import torch_reader
  marker = tmp_path / "pwned"

  class Evil:
    def __reduce__(self):
      return (__import__("os").system, (f"touch {marker}",))

  path = tmp_path / "evil.bin"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("evil/data.pkl", pickle.dumps({"model_pos": Evil()}, protocol=2))
  with pytest.raises(torch_reader.UnsafeCheckpointError, match=r"refuses to load pickled global (posix|os)\.system"):
    torch_reader.load(path)
  assert not marker.exists()


def test_reader_matches_torch_load(official_27_1_3):
  from poseformer_jax import torch_reader
  ours = torch_reader.load(official_27_1_3)
  theirs = torch.load(official_27_1_3, weights_only=False)
  assert ours["epoch"] == 7 and ours["lr"] == pytest.approx(9.3e-5)
  assert isinstance(ours["random_state"], torch_reader.Opaque)
  assert set(ours["model_pos"]) == set(theirs["model_pos"])
  for k, v in theirs["model_pos"].items():
    np.testing.assert_array_equal(ours["model_pos"][k], v.numpy())
  exp_avg = ours["optimizer"]["state"][0]["exp_avg"]
  np.testing.assert_array_equal(exp_avg, theirs["optimizer"]["state"][0]["exp_avg"].numpy())


def test_converter_works_without_torch(tmp_path, official_27_1_3):
  code = ("import sys; sys.modules['torch'] = None; sys.argv = ['convert_torch_weights.py', "
          f"'--input', {str(official_27_1_3)!r}, '--frames', '27', '--output', {str(tmp_path / 'out')!r}]; "
          "import runpy; runpy.run_path('convert_torch_weights.py', run_name='__main__')")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr
  x = np.random.default_rng(2).uniform(-1, 1, size=(2, 27, 17, 2)).astype(np.float32)
  ours, _ = _flax_forward(tmp_path / "out", x)
  ref = random_reference(27, 1, 3)
  ref.load_state_dict({k[len("module."):]: v for k, v in
                       torch.load(official_27_1_3, weights_only=False)["model_pos"].items()})
  assert np.abs(ours - _torch_forward(ref.eval(), x)).max() < TOL


def test_3dhp_checkpoint_predicts_millimetres_converted_to_metres(tmp_path):
  """Upstream's 3DHP model is trained in mm; with the 3DHP config the converter rescales the head."""
  ref = random_reference(81, 9, 9, seed=11)
  save_official(ref, tmp_path / "no_refine.pth", plain=True)
  rc = convert_torch_weights.main(["--input", str(tmp_path / "no_refine.pth"), "--frames", "81",
                                   "--output", str(tmp_path / "out"),
                                   "--config", str(ROOT / "configs/mpi_inf_3dhp.py")])
  assert rc == 0
  x = np.random.default_rng(4).uniform(-1, 1, size=(2, 81, 17, 2)).astype(np.float32)
  ours, config = _flax_forward(tmp_path / "out", x)
  assert config.data.dataset == "mpi_inf_3dhp"
  np.testing.assert_allclose(ours * 1000.0, _torch_forward(ref, x), atol=1e-5 * 1000)


def test_num_heads_flag_sets_the_attention_heads(tmp_path):
  """The head count is not in the file: --num-heads=4 on a 4-head model gives parity, the
  default 8 on the same weights (same shapes) does not."""
  ref = random_reference(27, 1, 3, seed=5, heads=4)
  save_official(ref, tmp_path / "h4.bin", plain=True)
  x = np.random.default_rng(6).uniform(-1, 1, size=(2, 27, 17, 2)).astype(np.float32)
  theirs = _torch_forward(ref, x)
  _convert(tmp_path / "h4.bin", tmp_path / "four", 27, ["--num-heads", "4"])
  ours, config = _flax_forward(tmp_path / "four", x)
  assert config.model.num_heads == 4 and np.abs(ours - theirs).max() < TOL
  _convert(tmp_path / "h4.bin", tmp_path / "eight", 27)
  wrong, config = _flax_forward(tmp_path / "eight", x)
  assert config.model.num_heads == 8 and np.abs(wrong - theirs).max() > 100 * TOL


@pytest.mark.parametrize("config_file, units, scale", [
    ("h36m.py", "mm", 1e-3),          # a millimetre model converted with the H36M config
    ("mpi_inf_3dhp.py", "m", 1.0),    # a metre model converted with the 3DHP config
    ("mpi_inf_3dhp.py", "auto", 1e-3),
])
def test_units_flag_scales_the_output_to_metres(tmp_path, capsys, config_file, units, scale):
  ref = random_reference(27, 1, 3, seed=8)
  save_official(ref, tmp_path / "ck.bin", plain=True)
  _convert(tmp_path / "ck.bin", tmp_path / "out", 27,
           ["--units", units, "--config", str(ROOT / "configs" / config_file)])
  assert f"output={'mm -> m' if scale != 1 else 'm'}" in capsys.readouterr().out
  x = np.random.default_rng(9).uniform(-1, 1, size=(2, 27, 17, 2)).astype(np.float32)
  ours, _ = _flax_forward(tmp_path / "out", x)
  theirs = _torch_forward(ref, x)
  assert np.abs(theirs).max() > 0.1
  np.testing.assert_allclose(ours, theirs * scale, rtol=0, atol=TOL * scale)
