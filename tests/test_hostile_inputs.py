"""Hostile inputs: broken files and configs give one-line errors, never tracebacks or damage.

Three layers:

* command lines (`train.py`, `eval.py`, `convert_torch_weights.py`,
  `python -m poseformer_jax lift`, `python -m poseformer_jax.data.prepare_h36m`)
  run as subprocesses on damaged inputs: exit status non-zero, exactly one
  non-empty stderr line ``error: <file>: <problem>``, no traceback (unless
  ``--verbose``), and pre-existing outputs byte-for-byte unchanged;
* a seeded fuzz test feeding random bytes, random truncations/bit flips of
  valid files and random-shaped/dtyped arrays and containers to every loader:
  each call either succeeds or raises a `PoseFormerError` subclass;
* security: every loader that must unpickle (VideoPose3D npz dicts, 3DHP npz,
  torch checkpoints) refuses a planted ``os.system`` global, and the marker
  file it would create never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from poseformer_jax import checkpoint, config_lib, torch_reader
from poseformer_jax.data import h36m, mpi_inf_3dhp, safe_npz, synthetic_3dhp
from poseformer_jax.errors import PoseFormerError
from poseformer_jax.video import formats

from conftest import require

REPO = Path(__file__).resolve().parent.parent

TINY_MODEL = {"num_frames": 9, "kept_frames": 3, "kept_coeffs": 3, "embed_dim_ratio": 8,
              "depth": 1, "num_heads": 2}
# Data settings used with the suite's shared synthetic Human3.6M (gt 2D, one test subject).
DATA_ARGS = {"data.keypoints": "gt", "data.subjects_train": "S1", "data.subjects_test": "S9",
             "data.backend": "numpy", "eval.max_frames": 20, "eval.batch_size": 16}


# -- helpers -----------------------------------------------------------------------

def env() -> dict:
  e = dict(os.environ)
  e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
  e["JAX_PLATFORMS"] = "cpu"
  e["TF_CPP_MIN_LOG_LEVEL"] = "3"
  return e


def run_cli(args, timeout=300) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env(), capture_output=True,
                        text=True, timeout=timeout)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
  """Non-zero exit, exactly one non-empty stderr line 'error: ...' containing every needle."""
  assert out.returncode != 0, (out.stdout, out.stderr)
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
  for needle in needles:
    assert str(needle) in lines[0], (needle, lines[0])
  return lines[0]


def snapshot(*paths) -> dict:
  """{file: bytes} of every file under `paths` (to check nothing was written over)."""
  out = {}
  for p in map(Path, paths):
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for f in files:
      out[str(f)] = f.read_bytes()
  return out


def save_object_npz(path, **items):
  """np.savez with each value stored as a 0-d object array (how VideoPose3D stores dicts)."""
  arrays = {}
  for k, v in items.items():
    if isinstance(v, np.ndarray):
      arrays[k] = v
    else:
      a = np.empty((), object)
      a[()] = v
      arrays[k] = a
  np.savez(path, **arrays)


def tiny_config(data_root, **model_overrides):
  config = config_lib.load_config_file(str(REPO / "configs" / "h36m.py"))
  for k, v in {**TINY_MODEL, **model_overrides}.items():
    config.model[k] = v
  config.data.root = str(data_root)
  for key, value in DATA_ARGS.items():
    block, field = key.split(".")
    config[block][field] = value
  return config


def init_params(config):
  import jax
  from poseformer_jax import model as model_lib
  model = model_lib.from_config(config.model)
  x = np.zeros((1, config.model.num_frames, config.model.num_joints, 2), np.float32)
  return model.init(jax.random.PRNGKey(0), x, deterministic=True)["params"]


class Evil:
  """Unpickling this runs `touch marker` (if a loader lets it)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def data_copy(src_root, dst) -> Path:
  dst = Path(dst)
  dst.mkdir(parents=True, exist_ok=True)
  for name in ("data_3d_h36m.npz", "data_2d_h36m_gt.npz"):
    shutil.copy(Path(src_root) / name, dst / name)
  return dst


# -- fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_ckpt(synthetic_h36m_root, tmp_path_factory) -> Path:
  """A valid tiny checkpoint (step 0) of the 9-frame model, config pointing at the synthetic data."""
  config = tiny_config(synthetic_h36m_root)
  path = tmp_path_factory.mktemp("ckpt") / "tiny"
  checkpoint.save_params(path, init_params(config), config)
  return path


@pytest.fixture(scope="module")
def keypoint_file(tmp_path_factory) -> Path:
  """A valid coco17 .npz keypoint file (30 frames, 640x480)."""
  rng = np.random.default_rng(0)
  path = tmp_path_factory.mktemp("kps") / "kps_coco.npz"
  np.savez(path, keypoints=rng.uniform(50, 400, (30, 17, 2)), scores=np.ones((30, 17)),
           width=640, height=480, fps=30.0)
  return path


@pytest.fixture(scope="module")
def data_3dhp(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp("3dhp")
  synthetic_3dhp.write_3dhp(root, subjects=("S1",), seqs_per_subject=1, cameras=(0,),
                            frames=40, test_frames=30, seed=0)
  return root


# -- 1. train.py on broken data and configs -------------------------------------------

def _bad_3d(kind, src_root, root: Path) -> tuple[Path, str]:
  """Damages root/data_3d_h36m.npz as `kind`; returns (damaged file, expected message part)."""
  path = root / "data_3d_h36m.npz"
  good = h36m.read_positions_3d(Path(src_root) / "data_3d_h36m.npz")
  if kind == "random_bytes":
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    return path, "not a readable .npz"
  if kind == "truncated":
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "not a readable .npz"
  if kind == "wrong_pickled_type":
    save_object_npz(path, positions_3d=[1, 2, 3])
    return path, "positions_3d"
  if kind == "not_pickled_where_expected":
    np.savez(path, positions_3d=np.zeros((3, 32, 3)))
    return path, "positions_3d"
  pos = {s: dict(a) for s, a in good.items()}
  arr = pos["S1"][next(iter(pos["S1"]))]
  first = next(iter(pos["S1"]))
  if kind == "wrong_shape":
    pos["S1"][first] = arr[:, :17]
    want = "17 joints"
  elif kind == "wrong_ndim":
    pos["S1"][first] = arr.reshape(len(arr), -1)
    want = "shape"
  elif kind == "wrong_dtype":
    pos["S1"][first] = arr.astype("U8")
    want = "dtype"
  elif kind == "nan":
    arr = arr.copy()
    arr[3, 5, 1] = np.nan
    pos["S1"][first] = arr
    want = "NaN"
  elif kind == "inf":
    arr = arr.copy()
    arr[0, 0, 0] = np.inf
    pos["S1"][first] = arr
    want = "inf"
  elif kind == "empty":
    pos["S1"][first] = arr[:0]
    want = "empty"
  else:
    raise AssertionError(kind)
  save_object_npz(path, positions_3d=pos)
  return path, want


BAD_3D = ["random_bytes", "truncated", "wrong_pickled_type", "not_pickled_where_expected",
          "wrong_shape", "wrong_ndim", "wrong_dtype", "nan", "inf", "empty"]


@pytest.mark.parametrize("kind", BAD_3D)
def test_data_errors_are_one_line_in_process(kind, synthetic_h36m_root, tmp_path):
  """Cheap: the data layer's message for each kind of damage (the CLI prints exactly it)."""
  root = data_copy(synthetic_h36m_root, tmp_path / "data")
  path, want = _bad_3d(kind, synthetic_h36m_root, root)
  from poseformer_jax.data import dataset
  config = tiny_config(root)
  with pytest.raises(PoseFormerError) as info:
    dataset.load_sequences(config.data, "train")
  msg = str(info.value)
  assert "\n" not in msg and str(path) in msg and want in msg, msg


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "wrong_pickled_type", "wrong_shape", "nan",
                                  "empty"])
def test_train_cli_bad_data(kind, synthetic_h36m_root, tmp_path):
  root = data_copy(synthetic_h36m_root, tmp_path / "data")
  path, want = _bad_3d(kind, synthetic_h36m_root, root)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "log.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n')
  before = snapshot(workdir, root)
  out = run_cli(["train.py", "--config=configs/h36m.py", f"--workdir={workdir}",
                 f"--config.data.root={root}", "--config.train.batch_size=8",
                 *[f"--config.{k}={v}" for k, v in DATA_ARGS.items()]])
  assert_one_line_error(out, path, want)
  assert out.returncode == 2
  assert snapshot(workdir, root) == before


def test_train_cli_unknown_variant_and_unwritable_workdir(synthetic_h36m_root, tmp_path):
  out = run_cli(["train.py", "--config=configs/h36m.py:27_9_9", f"--workdir={tmp_path / 'r'}"])
  assert_one_line_error(out, "27_9_9", "unknown variant")
  assert not (tmp_path / "r").exists()
  # We run as root, so chmod does not stop writes: a path *under a regular file* cannot be
  # created by anyone (ENOTDIR), which is what an unwritable workdir looks like to train.py.
  blocker = tmp_path / "a_file"
  blocker.write_text("keep me")
  out = run_cli(["train.py", "--config=configs/h36m.py", f"--workdir={blocker / 'run'}",
                 f"--config.data.root={synthetic_h36m_root}",
                 *[f"--config.{k}={v}" for k, v in DATA_ARGS.items()]])
  assert_one_line_error(out, blocker / "run", "not writable")
  assert blocker.read_text() == "keep me"
  # The workdir itself is a file.
  out = run_cli(["train.py", "--config=configs/h36m.py", f"--workdir={blocker}"])
  assert_one_line_error(out, blocker, "not a directory")
  assert blocker.read_text() == "keep me"


def test_verbose_shows_the_traceback(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  out = run_cli(["train.py", "--config=configs/h36m.py", f"--workdir={blocker / 'run'}",
                 "--verbose"])
  assert out.returncode != 0 and "Traceback" in out.stderr


# -- 2. eval.py / lift on damaged or foreign checkpoints --------------------------------

def _damaged_ckpt(kind, tiny_ckpt, synthetic_h36m_root, dst: Path) -> Path:
  if kind == "other_architecture":
    # Parameters of a depth-1 model stored with a config that says depth 2.
    config = tiny_config(synthetic_h36m_root, depth=2)
    return checkpoint.save_params(dst, init_params(tiny_config(synthetic_h36m_root)), config)
  shutil.copytree(tiny_ckpt, dst)
  params = dst / "0" / "params"
  files = sorted(p for p in params.rglob("*") if p.is_file())
  if kind == "truncated":  # every file of the parameters cut to half
    for f in files:
      data = f.read_bytes()
      f.write_bytes(data[: len(data) // 2])
  elif kind == "params_missing":
    shutil.rmtree(params / "d" if (params / "d").is_dir() else params)
    if not params.exists():
      params.mkdir()
  elif kind == "config_garbage":
    (dst / "0" / "config" / "metadata").write_text("{not json")
  elif kind == "half_written":  # only an orbax temporary directory: an interrupted save
    (dst / "0").rename(dst / "0.orbax-checkpoint-tmp-123")
  else:
    raise AssertionError(kind)
  return dst


CKPT_KINDS = ["other_architecture", "truncated", "params_missing", "config_garbage",
              "half_written"]


@pytest.mark.parametrize("kind", CKPT_KINDS)
def test_load_checkpoint_damaged(kind, tiny_ckpt, synthetic_h36m_root, tmp_path):
  path = _damaged_ckpt(kind, tiny_ckpt, synthetic_h36m_root, tmp_path / "ck")
  with pytest.raises(checkpoint.CheckpointError) as info:
    checkpoint.load_checkpoint(path)
  assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["other_architecture", "truncated"])
def test_eval_cli_bad_checkpoint_keeps_existing_output(kind, tiny_ckpt, synthetic_h36m_root,
                                                       tmp_path):
  path = _damaged_ckpt(kind, tiny_ckpt, synthetic_h36m_root, tmp_path / "ck")
  output = tmp_path / "results.json"
  output.write_text('{"previous": true}')
  out = run_cli(["eval.py", "--config=configs/h36m.py", f"--checkpoint={path}",
                 f"--output={output}", f"--config.data.root={synthetic_h36m_root}",
                 *[f"--config.{k}={v}" for k, v in DATA_ARGS.items()]])
  assert_one_line_error(out, path, "parameters do not fit the stored architecture"
                        if kind == "other_architecture" else "cannot read parameters")
  assert output.read_text() == '{"previous": true}'


def test_eval_cli_unknown_variant(tiny_ckpt):
  out = run_cli(["eval.py", "--config=configs/h36m.py:27_9_9", f"--checkpoint={tiny_ckpt}"])
  assert_one_line_error(out, "27_9_9")


def _lift(args):
  return run_cli(["-m", "poseformer_jax", "lift", "--no-progress", *args])


@pytest.mark.slow
def test_lift_cli_hostile_inputs(tiny_ckpt, synthetic_h36m_root, keypoint_file, tmp_path):
  existing = tmp_path / "poses.npz"
  existing.write_bytes(b"previous output")
  common = [f"--output={existing}", "--overwrite"]
  bad_ckpt = _damaged_ckpt("truncated", tiny_ckpt, synthetic_h36m_root, tmp_path / "ck")
  other = _damaged_ckpt("other_architecture", tiny_ckpt, synthetic_h36m_root, tmp_path / "ck2")
  zero = tmp_path / "zero_size.npz"
  np.savez(zero, keypoints=np.load(keypoint_file)["keypoints"], width=0, height=0)
  garbage = tmp_path / "garbage.json"
  garbage.write_text('{"frames": [[1, 2, 3]]}')
  cases = [
      # (args, needles)
      (["--keypoints", str(keypoint_file), "--format", "mediapipe33",
        "--checkpoint", str(tiny_ckpt)], [keypoint_file, "shape"]),          # wrong format
      (["--keypoints", str(garbage), "--format", "coco17",
        "--checkpoint", str(tiny_ckpt)], [garbage, "expected 34 or 51"]),     # wrong layout
      (["--keypoints", str(keypoint_file), "--format", "coco17", "--image-size", "0,0",
        "--checkpoint", str(tiny_ckpt)], ["image size"]),                     # size zero (flag)
      (["--keypoints", str(zero), "--format", "coco17",
        "--checkpoint", str(tiny_ckpt)], ["image size"]),                     # size zero (file)
      (["--keypoints", str(keypoint_file), "--format", "coco17",
        "--checkpoint", str(bad_ckpt)], [bad_ckpt, "cannot read parameters"]),  # truncated
      (["--keypoints", str(keypoint_file), "--format", "coco17",
        "--checkpoint", str(other)], [other, "parameters"]),                  # other architecture
  ]
  for args, needles in cases:
    out = _lift([*args, *common])
    assert_one_line_error(out, *needles)
    assert existing.read_bytes() == b"previous output", args
  # Without --overwrite an existing output is refused before anything runs.
  out = _lift(["--keypoints", str(keypoint_file), "--format", "coco17",
               "--checkpoint", str(tiny_ckpt), f"--output={existing}"])
  assert_one_line_error(out, existing, "already exists")
  assert existing.read_bytes() == b"previous output"


def test_lift_image_size_zero_in_file_names_the_file(tmp_path, keypoint_file):
  import importlib
  lift = importlib.import_module("poseformer_jax.lift_command.main")
  zero = tmp_path / "zero_size.npz"
  np.savez(zero, keypoints=np.load(keypoint_file)["keypoints"], width=0, height=0)
  args = lift.parse(["--keypoints", str(zero), "--format", "coco17",
                     "--checkpoint", str(tmp_path / "none"), "--output", str(tmp_path / "o.npz")])
  with pytest.raises(PoseFormerError) as info:
    lift.run(args)
  assert str(zero) in str(info.value)


# -- 3. convert_torch_weights.py and prepare_h36m ---------------------------------------

@pytest.mark.slow
def test_convert_and_prepare_cli_hostile_inputs(synthetic_h36m_root, tmp_path):
  torch = require("torch")
  marker = tmp_path / "PWNED"
  good = tmp_path / "good.pth"
  torch.save({"model_pos": {"w": torch.zeros(3)}}, good)
  truncated = tmp_path / "truncated.pth"
  truncated.write_bytes(good.read_bytes()[:200])
  evil = tmp_path / "evil.pth"
  torch.save({"model_pos": {"w": torch.zeros(3)}, "x": Evil(marker)}, evil)
  random_bytes = tmp_path / "random.bin"
  random_bytes.write_bytes(np.random.default_rng(0).bytes(1000))
  existing = tmp_path / "out"
  existing.mkdir()
  (existing / "keep.txt").write_text("previous")
  for path, needle in [(truncated, "truncated"), (evil, "posix.system"),
                       (random_bytes, "not a PyTorch checkpoint"),
                       (good, "not a PoseFormerV2 checkpoint (missing Spatial_pos_embed")]:
    out = run_cli(["convert_torch_weights.py", f"--input={path}", "--frames=27",
                   f"--output={tmp_path / 'new_out'}"])
    assert_one_line_error(out, path, needle)
    assert not (tmp_path / "new_out").exists()
  assert not marker.exists()
  # A valid-looking input and an output that already holds a checkpoint: refused, untouched.
  # prepare_h36m: damaged 3D file; an existing output is left alone even with --overwrite.
  root = data_copy(synthetic_h36m_root, tmp_path / "data")
  path, want = _bad_3d("nan", synthetic_h36m_root, root)
  before = snapshot(root / "data_2d_h36m_gt.npz")
  out = run_cli(["-m", "poseformer_jax.data.prepare_h36m", f"--root={root}", "--overwrite"])
  assert_one_line_error(out, path, want)
  assert snapshot(root / "data_2d_h36m_gt.npz") == before


# -- 4. fuzz -----------------------------------------------------------------------

_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_, np.complex64,
           np.float16, "U3", "S2", "V4"]
_DIMS = [0, 1, 2, 3, 17, 32, 33]


def random_array(rng) -> np.ndarray:
  ndim = int(rng.integers(0, 5))
  shape = tuple(int(rng.choice(_DIMS)) for _ in range(ndim))
  if np.prod(shape, dtype=np.int64) > 20000:
    shape = shape[:2]
  dtype = np.dtype(_DTYPES[int(rng.integers(len(_DTYPES)))])
  if dtype.kind in "fc":
    a = rng.normal(size=shape).astype(dtype)
    if a.size and rng.random() < 0.3:
      a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return a
  if dtype.kind in "iub":
    return rng.integers(0, 3, size=shape).astype(dtype)
  return np.zeros(shape, dtype)


def random_tree(rng, depth=0):
  """Random containers like the VideoPose3D/P-STMO dicts, with random leaves."""
  r = rng.random()
  if depth >= 4 or r < 0.35:
    choice = int(rng.integers(8))
    return [random_array(rng), random_array(rng), "S1", 3, 2.5, None, True,
            (1, 2)][choice]
  keys = [["S1", "S9", "Walking", "num_joints", "keypoints_symmetry", "layout_name",
           "data_2d", "data_3d", "valid", "S1 Seq1", "TS1", 0, 1, "0"][int(rng.integers(14))]
          for _ in range(int(rng.integers(0, 4)))]
  if r < 0.75:
    return {k: random_tree(rng, depth + 1) for k in keys}
  return [random_tree(rng, depth + 1) for _ in keys]


# Raw exceptions the fuzzing found earlier (all fixed): formats.py 0-d 'keypoints' with
# 'detected' (IndexError) and people[0] not a dict (AttributeError); torch_reader.py huge
# pickle lengths (MemoryError / OverflowError). New ones fail the test.


class Failures:
  """Collects raw (non-PoseFormerError) exceptions, one per (loader, type, raising line)."""

  def __init__(self):
    self.seen = {}

  def check(self, name, fn, *args):
    """Runs a loader; only success or a PoseFormerError is acceptable."""
    import traceback
    try:
      fn(*args)
    except PoseFormerError:
      pass
    except Exception as e:  # noqa: BLE001 - this is exactly what the test looks for
      frame = traceback.extract_tb(e.__traceback__)[-1]
      where = f"{Path(frame.filename).name}:{frame.lineno}"
      self.seen.setdefault((name, type(e).__name__, where),
                           f"{name}: raw {type(e).__name__} at {where}: {str(e)[:120]}")

  def assert_none(self):
    """Fails on any raw (non-PoseFormerError) exception."""
    assert not self.seen, "loaders raised non-PoseFormerError exceptions:\n" + "\n".join(
        sorted(self.seen.values()))


NPZ_LOADERS = {
    "safe_npz.load_npz": lambda p: safe_npz.load_npz(p),
    "safe_npz.load_npz(pickled)": lambda p: safe_npz.load_npz(
        p, pickled_keys=["positions_3d", "positions_2d", "metadata", "data", "keypoints"],
        required=["data"]),
    "h36m.read_positions_3d": h36m.read_positions_3d,
    "h36m.read_positions_2d": h36m.read_positions_2d,
    "mpi_inf_3dhp.read_train": mpi_inf_3dhp.read_train,
    "mpi_inf_3dhp.read_test": mpi_inf_3dhp.read_test,
    **{f"load_keypoints({f})": (lambda f: lambda p: formats.load_keypoints(p, f))(f)
       for f in ("coco17", "mediapipe33", "h36m17")},
}


def _mutations(rng, data: bytes, n: int):
  """Random truncations, bit flips and overwritten spans of `data`."""
  for i in range(n):
    kind = i % 3
    if kind == 0:
      yield data[: int(rng.integers(0, len(data)))]
    elif kind == 1:
      b = bytearray(data)
      for _ in range(int(rng.integers(1, 8))):
        j = int(rng.integers(len(b)))
        b[j] ^= 1 << int(rng.integers(8))
      yield bytes(b)
    else:
      b = bytearray(data)
      j = int(rng.integers(len(b)))
      span = rng.bytes(int(rng.integers(1, 64)))
      b[j:j + len(span)] = span
      yield bytes(b[: len(data)])


def test_fuzz_npz_and_keypoint_loaders(synthetic_h36m_root, data_3dhp, keypoint_file, tmp_path):
  rng = np.random.default_rng(1234)
  path = tmp_path / "fuzz.npz"
  # Valid inputs of every kind, to be damaged.
  valid = [(Path(synthetic_h36m_root) / "data_2d_h36m_gt.npz").read_bytes()[:200_000],
           (data_3dhp / "data_test_3dhp.npz").read_bytes(), keypoint_file.read_bytes()]
  small3d = tmp_path / "small3d.npz"
  pos = h36m.read_positions_3d(Path(synthetic_h36m_root) / "data_3d_h36m.npz")
  save_object_npz(small3d, positions_3d={"S1": {"Walking": pos["S1"][next(iter(pos["S1"]))][:5]}})
  valid.append(small3d.read_bytes())
  payloads = [rng.bytes(int(rng.integers(0, 2000))) for _ in range(10)]
  payloads.append(b"PK\x03\x04" + rng.bytes(300))  # a zip magic, then garbage
  for data in valid:
    payloads += list(_mutations(rng, data, 12))
  fails = Failures()
  for data in payloads:
    path.write_bytes(data)
    for name, load in NPZ_LOADERS.items():
      fails.check(name, load, path)
  # Random arrays and containers under the keys the readers look for.
  keys = ["positions_3d", "positions_2d", "metadata", "data", "keypoints", "scores",
          "width", "height", "fps", "detected", "visibility", "layout", "reconstruction"]
  for i in range(120):
    items = {}
    for k in rng.choice(keys, size=int(rng.integers(1, 5)), replace=False):
      items[str(k)] = random_array(rng) if rng.random() < 0.4 else random_tree(rng)
    try:
      save_object_npz(path, **items)
    except Exception:  # noqa: BLE001 - numpy cannot store this combination: not a test input
      continue
    for name, load in NPZ_LOADERS.items():
      fails.check(name, load, path)
  fails.assert_none()


def test_fuzz_json_keypoint_loaders(tmp_path):
  rng = np.random.default_rng(99)
  path = tmp_path / "k.json"
  folder = tmp_path / "openpose"
  folder.mkdir()

  def jsonable(tree):
    if isinstance(tree, np.ndarray):
      return tree.tolist() if tree.dtype.kind in "fiub" else str(tree)
    if isinstance(tree, dict):
      return {str(k): jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
      return [jsonable(v) for v in tree]
    return tree

  docs = [jsonable(random_tree(rng)) for _ in range(60)]
  docs += [[rng.normal(size=(17, int(rng.integers(1, 4)))).tolist()] * 3 for _ in range(5)]
  docs += [{"people": [{"pose_keypoints_2d": rng.normal(size=int(rng.integers(0, 80))).tolist()}]}
           for _ in range(10)]
  docs += [{"people": [jsonable(random_tree(rng))]} for _ in range(10)]
  docs += [{"frames": [None, [], [[1, 2]] * 17], "width": w, "height": h}
           for w, h in [(0, 0), ("a", 3), ([1, 2], 3), (None, 5)]]
  fails = Failures()
  for doc in docs:
    for text in (json.dumps(doc, allow_nan=True), json.dumps(doc)[: int(rng.integers(0, 40))]):
      path.write_text(text)
      (folder / "000_keypoints.json").write_text(text)
      for fmt in ("coco17", "h36m17", "openpose25"):
        fails.check(f"load_keypoints({fmt}, json)", formats.load_keypoints, path, fmt)
      fails.check("load_keypoints(openpose25, folder)", formats.load_keypoints, folder,
                  "openpose25")
  path.write_bytes(rng.bytes(500))
  for fmt in formats.FORMATS:
    fails.check(f"load_keypoints({fmt}, random bytes)", formats.load_keypoints, path, fmt)
  fails.assert_none()


def test_fuzz_torch_reader(tmp_path):
  torch = require("torch")
  rng = np.random.default_rng(7)
  good = tmp_path / "good.pth"
  torch.save({"model_pos": {"a.weight": torch.randn(4, 3), "b": torch.arange(5)},
              "epoch": 3, "lr": 1e-4}, good)
  legacy = tmp_path / "legacy.pth"
  torch.save({"w": torch.randn(3)}, legacy, _use_new_zipfile_serialization=False)
  path = tmp_path / "fuzz.pth"
  payloads = [rng.bytes(int(rng.integers(0, 3000))) for _ in range(8)]
  for data in (good.read_bytes(), legacy.read_bytes()):
    payloads += list(_mutations(rng, data, 24))
  # A zip with a data.pkl of random pickle opcodes / of random containers.
  for i in range(20):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
      body = (rng.bytes(int(rng.integers(1, 200))) if i % 2 else
              pickle.dumps(random_tree(rng), protocol=2))
      zf.writestr("archive/data.pkl", body)
      zf.writestr("archive/data/0", rng.bytes(int(rng.integers(0, 64))))
    payloads.append(buf.getvalue())
  fails = Failures()
  for data in payloads:
    path.write_bytes(data)
    fails.check("torch_reader.load", torch_reader.load, path)
  fails.assert_none()


def test_fuzz_damaged_checkpoint_dirs(tiny_ckpt, tmp_path):
  """Random damage to a checkpoint directory: a CheckpointError, or the exact parameters."""
  import jax
  rng = np.random.default_rng(5)
  _, want, _ = checkpoint.load_checkpoint(tiny_ckpt)
  files = sorted(p.relative_to(tiny_ckpt) for p in tiny_ckpt.rglob("*") if p.is_file())
  silent = []
  for i in range(14):
    dst = tmp_path / f"ck{i}"
    shutil.copytree(tiny_ckpt, dst)
    victim = dst / files[int(rng.integers(len(files)))]
    data = victim.read_bytes()
    action = ["delete", "truncate", "random", "flip"][i % 4]
    if action == "delete":
      victim.unlink()
    elif action == "truncate":
      victim.write_bytes(data[: int(rng.integers(0, max(len(data), 1)))])
    elif action == "random":
      victim.write_bytes(rng.bytes(max(len(data), 1)))
    else:
      b = bytearray(data or b"\0")
      j = int(rng.integers(len(b)))
      b[j] ^= 0xFF
      victim.write_bytes(bytes(b))
    try:
      _, got, _ = checkpoint.load_checkpoint(dst)
    except PoseFormerError:
      continue
    except Exception as e:  # noqa: BLE001
      raise AssertionError(f"{action} {victim}: raw {type(e).__name__}: {e}") from e
    same = all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    if not same:
      silent.append(f"{action} {victim.relative_to(dst)}")
  # Damage that orbax/tensorstore cannot detect (no checksums on raw chunks) may load other
  # numbers; report it rather than hide it.
  assert not silent, f"damaged checkpoints loaded with different parameters: {silent}"


# -- 5. security: no pickled code runs ---------------------------------------------------

def test_no_loader_runs_pickled_code(tmp_path):
  torch = require("torch")
  marker = tmp_path / "PWNED"
  evil = Evil(marker)
  arr = np.zeros((2, 32, 3))
  files = {}
  # VideoPose3D 3D / 2D files (pickled dicts are allowed there, restricted to plain types).
  files["3d"] = tmp_path / "data_3d_h36m.npz"
  save_object_npz(files["3d"], positions_3d={"S1": {"Walking": arr, "x": evil}})
  files["2d"] = tmp_path / "data_2d_h36m_gt.npz"
  save_object_npz(files["2d"], positions_2d={"S1": {"Walking": [arr[..., :2]] * 4}},
                  metadata={"num_joints": 17, "keypoints_symmetry": [[1], [4]], "evil": evil})
  # P-STMO 3DHP files.
  files["3dhp"] = tmp_path / "data_train_3dhp.npz"
  save_object_npz(files["3dhp"], data={"S1 Seq1": [{0: {"data_2d": arr[..., :2], "evil": evil}}]})
  # Keypoint files (no pickles allowed at all).
  files["kps"] = tmp_path / "kps.npz"
  save_object_npz(files["kps"], keypoints=evil)
  # Torch checkpoints: zip format (our reader) and legacy format (torch weights_only).
  files["torch"] = tmp_path / "evil.pth"
  torch.save({"model_pos": {"w": torch.zeros(2)}, "x": evil}, files["torch"])
  files["torch_legacy"] = tmp_path / "evil_legacy.pth"
  torch.save({"x": evil}, files["torch_legacy"], _use_new_zipfile_serialization=False)
  # Other dangerous globals in a plain pickled npz member.
  others = []
  for module, name in [("builtins", "eval"), ("subprocess", "Popen"), ("builtins", "getattr"),
                       ("numpy", "load"), ("posix", "system")]:
    p = tmp_path / f"other_{name}.npz"
    body = (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X\x03\x00\x00\x00abc\x85R.")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False,
                                                  "shape": ()})
    with zipfile.ZipFile(p, "w") as zf:
      zf.writestr("positions_3d.npy", header.getvalue() + body)
      zf.writestr("data.npy", header.getvalue() + body)
    others.append(p)

  calls = [
      (h36m.read_positions_3d, files["3d"]), (h36m.read_positions_2d, files["2d"]),
      (mpi_inf_3dhp.read_train, files["3dhp"]), (mpi_inf_3dhp.read_test, files["3dhp"]),
      (lambda p: safe_npz.load_npz(p, pickled_keys=["data"]), files["3dhp"]),
      (lambda p: formats.load_keypoints(p, "coco17"), files["kps"]),
      (torch_reader.load, files["torch"]), (torch_reader.load, files["torch_legacy"]),
  ] + [(h36m.read_positions_3d, p) for p in others] + [
      (mpi_inf_3dhp.read_train, p) for p in others]
  for fn, path in calls:
    with pytest.raises(PoseFormerError) as info:
      fn(path)
    assert str(path) in str(info.value), str(info.value)
    assert not marker.exists(), f"{path}: pickled code ran"
  # Sanity: the planted files really are dangerous with a plain unpickler.
  assert not marker.exists()
  np.load(files["3d"], allow_pickle=True)["positions_3d"]
  assert marker.exists(), "the planted pickle is not effective; the test proves nothing"
