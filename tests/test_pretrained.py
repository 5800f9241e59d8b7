"""Models shipped in the package: loading by name, float16 storage, publishing, and the CLIs."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poseformer_jax import checkpoint as ckpt_lib
from poseformer_jax import config_lib
from poseformer_jax import model as model_lib
from poseformer_jax import pretrained
from poseformer_jax.pretrained import publish

from conftest import REPO_ROOT

SHIPPED = pretrained.DEFAULT


def _small_config():
  config = config_lib.base_config()
  config_lib.set_variant(config, "27_3_3")
  config.model.embed_dim_ratio = 8
  config.model.depth = 1
  config.model.num_heads = 2
  config.data.root = "/some/machine/path"
  return config


def _params(config, seed=0):
  model = model_lib.from_config(config.model)
  x = jnp.zeros((1, config.model.num_frames, 17, 2))
  return model, model.init(jax.random.PRNGKey(seed), x)["params"]


def test_unknown_name_lists_the_shipped_ones():
  with pytest.raises(pretrained.UnknownPretrainedError, match="no such shipped model.*available"):
    ckpt_lib.load_checkpoint("pretrained:no-such-model")


def test_float16_roundtrip_and_checksum(tmp_path):
  config = _small_config()
  model, params = _params(config)
  ckpt_lib.save_params(tmp_path / "m", publish.half_params(params), config)
  _, loaded, _ = ckpt_lib.load_checkpoint(tmp_path / "m")
  leaves = jax.tree.leaves(loaded)
  assert all(x.dtype == jnp.float32 for x in leaves)
  # float16 keeps ~3 decimal digits: parameters within a half-ulp, outputs within 1 %
  # (random weights; the shipped model's card reports its own float16-vs-float32 error).
  for a, b in zip(leaves, jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 27, 17, 2)) * 0.3
  ref = model.apply({"params": params}, x)
  diff = jnp.abs(model.apply({"params": loaded}, x) - ref).max()
  assert 0 < float(diff) < 0.01 * float(jnp.abs(ref).max())
  # A flipped bit in the stored float16 data is caught by the checksum.
  data = max((p for p in (tmp_path / "m").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  raw = bytearray(data.read_bytes())
  raw[len(raw) // 2] ^= 0x10
  data.write_bytes(bytes(raw))
  with pytest.raises(ckpt_lib.CheckpointError):
    ckpt_lib.load_checkpoint(tmp_path / "m")


def test_publish_writes_weights_curve_and_card(tmp_path):
  config = _small_config()
  _, params = _params(config)
  run = tmp_path / "run"
  ckpt_lib.save_params(run / "best", params, config)
  records = [{"kind": "epoch", "epoch": e, "step": 10 * e, "train_loss_mm": 100.0 / e,
              "lr": 1e-3 / e, "samples_per_s": 1.0, "epoch_time_s": 1800.0, "val_p1": 90.0 / e}
             for e in (1, 2, 3)]
  (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
  results = {"actions": {"Walk": {"p1": 50.0, "p2": 40.0, "p3": 45.0},
                         "Sit": {"p1": 70.0, "p2": 50.0, "p3": 60.0}},
             "average": {"p1": 60.0, "p2": 45.0, "p3": 52.5}}
  (tmp_path / "gt.json").write_text(json.dumps(results))
  out = tmp_path / "shipped"
  out.mkdir()
  proc = subprocess.run(
      [sys.executable, "-m", "poseformer_jax.pretrained.publish", f"--workdir={run}",
       "--name=tiny", f"--eval_json={tmp_path / 'gt.json'}", "--eval_labels=GT 2D",
       "--command=python train.py --x", "--hardware=a test", f"--out={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert pretrained.available(out) == ["tiny"]
  card = (out / "tiny.md").read_text()
  assert "| **Average** | 60.0 | 45.0 | 52.5 |" in card
  assert "| Walk | 50.0 | 40.0 | 45.0 |" in card
  assert "1.50 h of training steps" in card  # 3 epochs x 1800 s
  assert "30.00 mm at step 30" in card       # the best validation epoch
  assert (out / "tiny.png").stat().st_size > 1000
  stored, _, _ = ckpt_lib.load_config(pretrained.path("pretrained:tiny", out))
  assert stored.data.root == config_lib.base_config().data.root  # no machine path shipped
  _, loaded, _ = ckpt_lib.load_checkpoint(pretrained.path("pretrained:tiny", out))
  assert jax.tree.leaves(loaded)[0].dtype == jnp.float32
  # Publishing twice under one name is refused, in one line.
  again = subprocess.run(
      [sys.executable, "-m", "poseformer_jax.pretrained.publish", f"--workdir={run}",
       "--name=tiny", f"--eval_json={tmp_path / 'gt.json'}", f"--out={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
  assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
  # --average_with ships the mean of two runs' parameters (a model soup), and says so.
  other = tmp_path / "other"
  doubled = jax.tree.map(lambda x: 3.0 * np.asarray(x), params)
  ckpt_lib.save_params(other / "best", doubled, config)
  soup = subprocess.run(
      [sys.executable, "-m", "poseformer_jax.pretrained.publish", f"--workdir={run}",
       "--name=soup", f"--eval_json={tmp_path / 'gt.json'}", f"--average_with={other}",
       f"--out={out}"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
  assert soup.returncode == 0, soup.stderr
  _, mean, _ = ckpt_lib.load_checkpoint(pretrained.path("pretrained:soup", out))
  for got, want in zip(jax.tree.leaves(mean), jax.tree.leaves(params)):
    np.testing.assert_allclose(got, 2.0 * np.asarray(want), rtol=2e-3, atol=1e-4)
  assert "uniform model soup" in (out / "soup.md").read_text()
  # A run that continued `run` (train.init_from): its log follows the earlier one's, and
  # --card_only rewrites the card of the published weights with the check line.
  cont = tmp_path / "cont"
  cont.mkdir()
  later = [{**r, "epoch": r["epoch"] - 2, "step": r["step"] - 20, "val_p1": 20.0}
           for r in records[2:]] + [{**records[2], "epoch": 2, "step": 20, "val_p1": 15.0}]
  (cont / "log.jsonl").write_text("\n".join(json.dumps(r) for r in later) + "\n")
  lineage = publish.read_lineage([run, cont])
  assert [(r["step"], r["epoch"], r["stage"]) for r in lineage] == [
      (10, 1, 0), (20, 2, 0), (30, 3, 0), (40, 4, 1), (50, 5, 1)]
  check = {"average": {"p1": 61.2345, "p2": 1.0, "p3": 1.0}, "actions": {}}
  (tmp_path / "check.json").write_text(json.dumps(check))
  again = subprocess.run(
      [sys.executable, "-m", "poseformer_jax.pretrained.publish", f"--workdir={cont}",
       f"--prior_workdirs={run}", "--name=tiny", f"--eval_json={tmp_path / 'gt.json'}",
       "--card_only", f"--check_json={tmp_path / 'check.json'}", f"--out={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
  assert again.returncode == 0, again.stderr
  card = (out / "tiny.md").read_text()
  assert "5 epochs of" in card and "= 50 steps" in card and "over 2 continued runs" in card
  assert "15.00 mm at step 50" in card
  assert pretrained.check_p1("pretrained:tiny", out) == pytest.approx(61.234)
  assert " ".join(pretrained.CHECK_FLAGS) in card


# -- the model the project ships ------------------------------------------------------------


def test_a_model_trained_on_its_test_subjects_shows_its_siblings_figures(tmp_path):
  """A five-subject model has no held-out subject: its card must say whose figures it shows
  (the sibling that held the test subject out) and the table of models must not call them its
  own held-out accuracy; publishing it without naming the sibling is refused."""
  config = _small_config()
  config.data.subjects_train, config.data.subjects_test = "S1,S5,S6,S7,S8", "S8"
  heading, note = publish.held_out_heading(config.data, "S1,S5,S6,S7")
  assert heading[0] == "## Held-out accuracy (S8, of the sibling trained on S1,S5,S6,S7)"
  assert "S9 and S11" in note[0] and "`S1,S5,S6,S7`" in note[0]
  with pytest.raises(pretrained.PoseFormerError, match="--sibling"):
    publish.held_out_heading(config.data, None)
  config.data.subjects_train = "S1,S5,S6,S7"
  assert publish.held_out_heading(config.data, None) == (
      ["## Held-out accuracy (S8, never seen in training)", ""], [])
  # The card and its summary row, as publish writes them.
  config.data.subjects_train = "S1,S5,S6,S7,S8"
  results = {"actions": {"Walk": {"p1": 50.0, "p2": 40.0, "p3": 45.0}},
             "average": {"p1": 50.0, "p2": 40.0, "p3": 45.0}}
  card = publish.card_text("five", config, [], [results], ["GT 2D"], "cmd", "hw", 1000, "",
                           sibling="S1,S5,S6,S7")
  (tmp_path / "five" / "0").mkdir(parents=True)  # a model folder holds a step
  (tmp_path / "five.md").write_text(card)
  row = pretrained.card_summary("five", tmp_path)
  assert row["held_out"] == "S8 (sibling)" and row["accuracy"].startswith("GT 2D: P1 50.0")
  assert "This model trained on `S1,S5,S6,S7,S8`" in card
  assert "the last parameters" in card and "best-validation" not in card


def test_shipped_model_is_listed_small_and_documented():
  assert SHIPPED in pretrained.available()
  folder = pretrained.path(f"pretrained:{SHIPPED}")
  total = sum(publish.size_of(p) for p in folder.parent.iterdir() if p.is_dir())
  assert total <= publish.MAX_SHIPPED_BYTES
  card = pretrained.model_card(f"pretrained:{SHIPPED}")
  for needed in ("Held-out accuracy", "**Average**", "non-commercial", "Command:"):
    assert needed in card
  assert (folder.parent / f"{SHIPPED}.png").is_file()


def test_shipped_model_loads_by_name_and_predicts_a_plausible_body():
  model, params, config = ckpt_lib.load_checkpoint(f"pretrained:{SHIPPED}")
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  assert config.model.num_joints == 17
  # A standing person seen from the front (normalised screen coords), still for F frames.
  pose = np.array([[0, 0], [-.1, 0], [-.1, .4], [-.1, .8], [.1, 0], [.1, .4], [.1, .8],
                   [0, -.2], [0, -.4], [0, -.5], [0, -.6], [.15, -.4], [.25, -.2], [.3, 0],
                   [-.15, -.4], [-.25, -.2], [-.3, 0]], np.float32) * 0.5
  x = np.broadcast_to(pose, (1, model.num_frames, 17, 2))
  out = np.asarray(model.apply({"params": params}, x))[0, 0]
  assert np.isfinite(out).all()
  # Root-relative metres: the feet below the hip, the head above it (y points down),
  # and a body size of a real person (hip to head 0.5-0.9 m).
  assert out[3, 1] > 0.5 and out[6, 1] > 0.5
  assert -0.9 < out[10, 1] < -0.5


@pytest.mark.slow
def test_lift_cli_accepts_the_pretrained_name(tmp_path):
  clip = REPO_ROOT / "examples" / "skater_mediapipe33.npz"
  out = tmp_path / "out.npz"
  proc = subprocess.run(
      [sys.executable, "-m", "poseformer_jax", "lift", str(clip), "--format=mediapipe33",
       f"--checkpoint=pretrained:{SHIPPED}", f"--output={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  poses = np.load(out)["poses_3d"]
  assert poses.shape[1:] == (17, 3) and np.isfinite(poses).all()


@pytest.mark.slow
def test_eval_cli_accepts_the_pretrained_name(tmp_path, synthetic_h36m_root):
  """eval.py --checkpoint=pretrained:NAME: same numbers as the model loaded by hand."""
  out = tmp_path / "res.json"
  proc = subprocess.run(
      [sys.executable, str(REPO_ROOT / "eval.py"), "--config=configs/h36m.py:81_1_3",
       f"--checkpoint=pretrained:{SHIPPED}", f"--config.data.root={synthetic_h36m_root}",
       "--config.data.keypoints=gt", "--config.data.subjects_test=S9",
       "--config.eval.max_frames=30", "--config.eval.batch_size=64", f"--output={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "Average" in proc.stdout
  got = json.loads(out.read_text())["average"]
  from poseformer_jax import evaluation
  from poseformer_jax.data import dataset
  config = config_lib.load_config_file(str(REPO_ROOT / "configs" / "h36m.py") + ":81_1_3")
  config.data.root, config.data.keypoints = str(synthetic_h36m_root), "gt"
  config.data.subjects_test, config.eval.max_frames, config.eval.batch_size = "S9", 30, 64
  model, params, _ = ckpt_lib.load_checkpoint(pretrained.path(f"pretrained:{SHIPPED}"))
  seqs, info = dataset.load_sequences(config.data, "test")
  want = evaluation.Evaluator(config, model, seqs, info)(params, progress=False)["average"]
  np.testing.assert_allclose(got["p1"], want["p1"], rtol=1e-6)


@pytest.mark.real_data
def test_shipped_model_scores_its_card_on_real_s8(tmp_path, real_h36m_root):
  """eval.py on the card's fixed subset of real S8 (pretrained.CHECK_FLAGS) gives the card's
  P1 within 0.5 mm: the shipped weights are the ones the card describes."""
  out = tmp_path / "check.json"
  proc = subprocess.run(
      [sys.executable, str(REPO_ROOT / "eval.py"), f"--checkpoint=pretrained:{SHIPPED}",
       f"--config.data.root={real_h36m_root}", *pretrained.CHECK_FLAGS, f"--output={out}"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = json.loads(out.read_text())["average"]
  assert abs(got["p1"] - pretrained.check_p1(f"pretrained:{SHIPPED}")) <= 0.5
  assert 15.0 < got["p1"] < 80.0  # and it is a trained model's accuracy (S8 may be seen)
  # The default model places the person too: its root error on the same subset is the card's.
  card_mrpe = pretrained.check_mrpe(f"pretrained:{SHIPPED}")
  assert card_mrpe is not None, "the default model ships without a trajectory model"
  assert abs(got["mrpe"] - card_mrpe) <= 2.0
  assert 20.0 < got["mrpe"] < 200.0 and got["abs_mpjpe"] > got["p1"]


@pytest.mark.real_data
def test_shipped_trajectory_walks_as_far_as_the_person(real_h36m_root):
  """On S8's walking sequences (every camera, GT 2D, 50 frames/s) the length of the predicted
  root path is within 15 % of the true path's: the body moves through space, not on the spot
  and not with jitter that doubles the distance."""
  from poseformer_jax import evaluation
  from poseformer_jax.data import dataset
  model, params, config = ckpt_lib.load_trajectory(pretrained.path(f"pretrained:{SHIPPED}"))
  config.data.root, config.data.keypoints = str(real_h36m_root), "gt"
  config.data.subjects_test = "S8"
  seqs, info = dataset.load_sequences(config.data, "test")
  seqs = [s for s in seqs if s.action.split(" ")[0] in ("Walking", "WalkTogether")]
  assert len(seqs) == 16  # 2 recordings x 2 actions x 4 cameras
  predictor = evaluation.make_trajectory_predictor(model, params, info, batch_size=512)
  roots = predictor.predict_sequences([s.rays_2d for s in seqs])

  def length(path):
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())

  ratios = np.array([length(r[:, 0]) / length(s.root_3d) for r, s in zip(roots, seqs)])
  assert all(length(s.root_3d) > 5.0 for s in seqs)  # metres walked: a real path
  assert np.all(np.abs(ratios - 1.0) <= 0.15), ratios
