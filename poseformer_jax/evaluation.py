"""The standard evaluation protocol (Human3.6M; MPI-INF-3DHP adds PCK/AUC).

`evaluate` predicts every frame of every test sequence (edge-padded windows,
test-time flip per the Predictor), compares with the root-zeroed ground truth
and reports, in millimetres:

* per action (the name before the first space, so 'Directions 1' of S9 and
  'Directions' of S11 are one action): P1 (MPJPE), P2 (P-MPJPE), P3 (N-MPJPE)
  averaged over all evaluated frames of the action, across subjects and
  cameras; MPJVE computed per sequence and averaged with frame weights — as
  upstream's ``run_poseformer.py``;
* the average: the mean over the evaluated actions (the paper's figure);
* optionally the same per subject.

MPI-INF-3DHP (``info.name`` starting with 'mpi'): only frames flagged in
``Sequence.valid`` count, the prediction's root joint is zeroed (as that
code base does), and each entry adds 'pck' and 'auc' (percent, the 14 joints
of the official evaluation script); an extra 'overall' entry pools all frames,
which is how that dataset's results are usually reported.

Result JSON::

    {"actions": {"Walking": {"p1": .., "p2": .., "p3": .., "mpjve": ..}, ...},
     "average": {"p1": .., "p2": .., "p3": .., "mpjve": ..},
     "subjects": {"S9": {"actions": {...}, "average": {...}}, ...}}   # per_subject only

`Evaluator` is the one entry point: built once from the config and the test
data, called with parameters. Training validates and runs its final
evaluation with it; `run_eval` (``eval.py``) loads a checkpoint and the test
split and builds one. `evaluate` is the protocol over any predictor.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import uuid
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from poseformer_jax import architectures
from poseformer_jax import checkpoint
from poseformer_jax import metrics
from poseformer_jax import parallel
from poseformer_jax import trajectory as trajectory_lib
from poseformer_jax import trajectory_baseline
from poseformer_jax.data import dataset
from poseformer_jax.errors import ConfigError, DataError
from poseformer_jax.inference import Predictor

# Joints scored by PCK/AUC on MPI-INF-3DHP: the 14 of `mpii_get_pck_auc_joint_groups.m`
# (head top .. left ankle; the pelvis 14, spine 15 and head 16 are left out).
MPI_INF_3DHP_PCK_JOINTS = tuple(range(14))
METRIC_KEYS = ("p1", "p2", "p3", "mpjve")


def action_name(action: str) -> str:
  """'Directions 1' -> 'Directions' (upstream pools an action's takes)."""
  return action.split(" ")[0]


def is_mpi_inf_3dhp(info) -> bool:
  return info.name.lower().startswith("mpi")


def make_predictor(model, params, info, *, batch_size: int = 1024, flip: bool = True,
                   mesh=None) -> Predictor:
  """The Predictor of the protocol: dataset flip pairs, raw network output.

  Upstream's Human3.6M evaluation scores the network's output as it is (only
  the target's root is zeroed), so the predicted root joint is kept here;
  `evaluate` zeroes it itself for MPI-INF-3DHP, as that code base does.
  """
  return Predictor.from_info(model, params, info, batch_size=batch_size, flip=flip,
                             mesh=mesh, root_joint=None)


def make_trajectory_predictor(model, params, info, *, batch_size: int = 1024, flip: bool = True,
                              mesh=None) -> Predictor:
  """A Predictor of a trajectory model over rays: (T, J, 2) -> (T, 1, 3) camera-frame roots.

  With `flip` the mirrored rays' root, its x negated, is averaged in."""
  return Predictor(model, params, kps_left=info.kps_left, kps_right=info.kps_right,
                   joints_left=(), joints_right=(), batch_size=batch_size, flip=flip,
                   mesh=mesh, root_joint=None)


def evaluate(predictor: Predictor | None, sequences, info, *, per_subject: bool = False,
             noise_std_px: float = 0.0, seed: int = 0, progress: bool = True,
             max_frames: int = -1, trajectory: Predictor | None = None,
             known_size: bool = False, latency: int | None = None) -> dict:
  """Evaluates a predictor on test sequences. See the module docstring.

  Args:
    predictor: a pose `Predictor` (usually from `make_predictor`); None scores
      only the trajectory.
    sequences: list of `poseformer_jax.data.dataset.Sequence` with 3D ground truth.
    info: the `DatasetInfo` of the sequences (root joint, dataset name).
    per_subject: add a 'subjects' block.
    noise_std_px: std of Gaussian noise added to the pose model's 2D input, in
      pixels of each sequence's image (0: none); drawn from `seed`.
    progress: show a progress bar (stderr).
    max_frames: > 0 keeps only the first `max_frames` frames of each sequence.
    trajectory: a `Predictor` of a trajectory model (`make_trajectory_predictor`):
      adds 'mrpe', 'mrpe_x', 'mrpe_y', 'mrpe_z' and, with a pose predictor,
      'abs_mpjpe' (pose + root against the true camera-frame joints). Needs the
      sequences' `rays_2d` and `root_3d`.
    known_size: score the roots as a user who gives each person's height would get
      them (``lift --height``): each subject's predicted roots scaled by its summed
      bone length (from the 3D ground truth) over `trajectory.REFERENCE_BONES_M`.
    latency: frames after each frame the pose model's window sees
      (`Predictor.predict_sequence`; a live stream's accuracy); None: the centred window.
  Returns:
    the results dict (millimetres; PCK/AUC in percent), JSON-serialisable.
  """
  if not sequences:
    raise DataError("no test sequences to evaluate")
  if predictor is None and trajectory is None:
    raise ConfigError("nothing to evaluate: neither a pose nor a trajectory predictor")
  inputs, targets, valids = _test_arrays(sequences, info, max_frames, noise_std_px, seed)
  lengths = [len(x) for x in inputs]
  seq_id = np.repeat(np.arange(len(inputs)), lengths)
  valid = np.concatenate(valids)
  mpi = is_mpi_inf_3dhp(info)
  frame, seq_vel, pred = {}, np.full(len(inputs), np.nan), None
  if predictor is not None:
    pred = np.concatenate(_predict(predictor, inputs, progress, latency))
    target = np.concatenate(targets)
    if mpi:
      pred[:, info.root_joint] = 0.0
    frame, step_err = metrics.frame_metrics(pred, target,
                                           MPI_INF_3DHP_PCK_JOINTS if mpi else None)
    seq_vel = metrics.sequence_mpjve(step_err, valid, seq_id, len(inputs))
  if trajectory is not None:
    rays, roots = _trajectory_arrays(sequences, lengths)
    root_preds = _predict(trajectory, rays, progress)
    if known_size:
      sizes = dataset.subject_sizes(sequences)
      root_preds = [r * sizes[s.subject] / trajectory_lib.REFERENCE_BONES_M
                    for r, s in zip(root_preds, sequences)]
    root_pred = np.concatenate(root_preds)[:, 0]
    root_true = np.concatenate(roots)
    frame.update(metrics.root_errors(root_pred, root_true))
    if pred is not None:
      frame["abs_mpjpe"] = metrics.absolute_mpjpe(pred, root_pred, np.concatenate(targets),
                                                  root_true)

  actions = [action_name(s.action) for s in sequences]
  subjects = [s.subject for s in sequences]
  keys = list(frame)
  results = _summarise(frame, keys, valid, seq_id, seq_vel, actions,
                       np.ones(len(sequences), bool))
  if mpi and predictor is not None:
    results["overall"] = _pool(frame, keys, valid, seq_vel, np.ones(len(valid), bool),
                               seq_id, np.ones(len(sequences), bool))
  if per_subject:
    results["subjects"] = {}
    for subject in dict.fromkeys(subjects):
      chosen = np.array([x == subject for x in subjects])
      results["subjects"][subject] = _summarise(frame, keys, valid, seq_id, seq_vel, actions,
                                                chosen)
  return results


def _test_arrays(sequences, info, max_frames: int, noise_std_px: float, seed: int):
  """The pose model's inputs, root-zeroed targets and valid masks of each sequence."""
  inputs, targets, valids = [], [], []
  rng = np.random.default_rng(seed)
  for s in sequences:
    if s.positions_3d is None:
      raise DataError(f"{s.subject} {s.action} camera {s.camera}: no 3D ground truth")
    end = max_frames if max_frames and max_frames > 0 else len(s.keypoints_2d)
    x = np.asarray(s.keypoints_2d[:end], np.float32)
    y = np.array(s.positions_3d[:end], np.float32)  # a copy: the root is zeroed below
    if x.shape[:1] != y.shape[:1]:
      raise DataError(f"{s.subject} {s.action} camera {s.camera}: {len(x)} 2D frames but "
                      f"{len(y)} 3D frames")
    if noise_std_px > 0:
      x = x + (rng.standard_normal(x.shape) * (noise_std_px * 2.0 / s.image_size[0])
               ).astype(np.float32)
    y[:, info.root_joint] = 0.0
    inputs.append(x)
    targets.append(y)
    valids.append(np.ones(len(x), bool) if s.valid is None
                  else np.asarray(s.valid[:end], bool))
  return inputs, targets, valids


def _trajectory_arrays(sequences, lengths) -> tuple[list, list]:
  """Each sequence's rays (T, J, 2) and true roots (T, 3), cut to `lengths`."""
  rays, roots = [], []
  for s, n in zip(sequences, lengths):
    if s.rays_2d is None or s.root_3d is None:
      raise DataError(f"{s.subject} {s.action} camera {s.camera}: no camera rays / root "
                      "positions to evaluate a trajectory with")
    rays.append(np.asarray(s.rays_2d[:n], np.float32))
    roots.append(np.asarray(s.root_3d[:n], np.float64))
  return rays, roots


def _predict(predictor: Predictor, inputs: list, progress: bool, latency=None) -> list:
  """`predictor.predict_sequences` under a progress bar over the sequences."""
  bar = _progress_bar(len(inputs), progress)
  ends = np.cumsum([len(x) for x in inputs])

  def on_frames(done: int) -> None:
    if bar is not None:
      bar.update(int(np.searchsorted(ends, done, side="right")) - bar.n)

  try:
    extra = {} if latency is None else {"latency": latency}  # also predictors without it
    return predictor.predict_sequences(inputs, progress=on_frames, **extra)
  finally:
    if bar is not None:
      bar.close()


def _pool(frame, keys, valid, seq_vel, frame_mask, seq_id, seq_mask) -> dict | None:
  """Pooled metrics over the chosen valid frames (mm / percent); None if no frame."""
  w = valid & frame_mask
  if not w.any():
    return None
  entry = {}
  for k in keys:
    scale = 100.0 if k in ("pck", "auc") else 1000.0
    entry[k] = float(np.sum(frame[k][w]) / np.sum(w) * scale)
  # MPJVE: per sequence, weighted by the sequence's evaluated frames (upstream).
  frames_per_seq = np.bincount(seq_id[w], minlength=len(seq_vel)).astype(np.float64)
  ok = seq_mask & np.isfinite(seq_vel) & (frames_per_seq > 0)
  entry["mpjve"] = (float(np.sum(seq_vel[ok] * frames_per_seq[ok]) / np.sum(frames_per_seq[ok])
                          * 1000.0) if ok.any() else None)
  return {k: entry[k] for k in _ordered(keys)}


def _summarise(frame, keys, valid, seq_id, seq_vel, actions, seq_mask) -> dict:
  """{'actions': {...}, 'average': {...}} over the sequences in `seq_mask`."""
  per_action = {}
  for name in dict.fromkeys(a for a, m in zip(actions, seq_mask) if m):
    chosen = seq_mask & np.array([a == name for a in actions])
    entry = _pool(frame, keys, valid, seq_vel, chosen[seq_id], seq_id, chosen)
    if entry is not None:
      per_action[name] = entry
  average = {}
  for k in _ordered(keys):
    vals = [e[k] for e in per_action.values() if e[k] is not None]
    average[k] = float(np.mean(vals)) if vals else None
  return {"actions": per_action, "average": average}


def _ordered(keys) -> list[str]:
  """Pose errors first (MPJVE with them), then the rest (PCK/AUC, root errors) as given."""
  pose = [k for k in METRIC_KEYS[:3] if k in keys]
  return pose + (["mpjve"] if pose else []) + [k for k in keys if k not in METRIC_KEYS]


def _progress_bar(total: int, enabled: bool):
  if not enabled:
    return None
  return tqdm(total=total, unit="seq", desc="evaluating", file=sys.stderr, dynamic_ncols=True)


# -- presentation --------------------------------------------------------------

def format_table(results: dict) -> str:
  """A readable table of `evaluate`'s results (mm; PCK/AUC in percent)."""
  lines = []

  def block(title: str | None, part: dict) -> None:
    keys = list(part["average"])
    labels = {"p1": "P1 mm", "p2": "P2 mm", "p3": "P3 mm", "mpjve": "MPJVE mm",
              "pck": "PCK %", "auc": "AUC %", "mrpe": "MRPE mm", "mrpe_x": "x mm",
              "mrpe_y": "y mm", "mrpe_z": "z mm", "abs_mpjpe": "abs mm"}
    width = max([len("Average")] + [len(a) for a in part["actions"]]) + 2
    if title:
      lines.append(title)
    lines.append("Action".ljust(width) + "".join(f"{labels.get(k, k):>10}" for k in keys))
    lines.append("-" * (width + 10 * len(keys)))
    rows = list(part["actions"].items()) + [("Average", part["average"])]
    for i, (name, entry) in enumerate(rows):
      if i == len(rows) - 1:
        lines.append("-" * (width + 10 * len(keys)))
      lines.append(name.ljust(width) + "".join(_cell(entry.get(k)) for k in keys))

  block(None, results)
  if results.get("overall"):
    lines.append("Overall".ljust(9) + " (all frames pooled)"
                 + "".join(f" {k}={_cell(v).strip()}" for k, v in results["overall"].items()))
  for subject, part in results.get("subjects", {}).items():
    lines.append("")
    block(f"Subject {subject}", part)
  return "\n".join(lines)


def _cell(value) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return f"{'-':>10}"
  return f"{value:>10.2f}"


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
  """Writes JSON via a temporary file in the same folder and a rename."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
  try:
    with open(tmp, "x") as f:  # 'x': never clobbers; the usual umask permissions
      json.dump(obj, f, indent=2, allow_nan=False)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


# -- the one evaluator -------------------------------------------------------------

class Evaluator:
  """The protocol on a fixed test set: built once, called with parameters.

  Args:
    config: the full config; ``config.eval`` gives the protocol (batch_size,
      flip, noise_std, seed, per_subject, max_frames).
    model: the network to evaluate: a `PoseFormerV2` (P1/P2/P3/MPJVE) or a
      `trajectory.TrajectoryNet` (MRPE and its x/y/z parts).
    sequences: test `dataset.Sequence`s with 3D ground truth.
    info: their `dataset.DatasetInfo`.
    trajectory_model: with a pose `model`, the trajectory model of the same
      checkpoint: adds the root errors and the absolute MPJPE (its parameters
      go to `__call__` as `trajectory_params`).

  The forward pass runs on `parallel.eval_mesh` (this process's devices) and
  compiles once: later calls only put new parameters on the devices.
  """

  def __init__(self, config, model, sequences, info, trajectory_model=None):
    if info.num_joints != model.num_joints:
      raise ConfigError(f"the checkpoint's model has {model.num_joints} joints but the "
                        f"{info.name} data has {info.num_joints}")
    self.eval_cfg = config.eval
    trajectory_only = architectures.is_trajectory(model)
    self.model = None if trajectory_only else model
    self.trajectory_model = model if trajectory_only else trajectory_model
    self.sequences, self.info = sequences, info
    self.mesh = parallel.eval_mesh(int(self.eval_cfg.batch_size))
    self._predictors: dict[str, Predictor] = {}

  def __call__(self, params, *, trajectory_params=None, progress: bool = False,
               validation: bool = False) -> dict:
    """The results dict (see the module docstring) of `params` (the parameters of
    `model`) and, for a pose model with a trajectory model, `trajectory_params`.

    `validation`: the quick check of training (no input noise, no per-subject
    block), whatever ``config.eval`` says about those.
    """
    ev = self.eval_cfg
    if self.model is None:
      pose, traj = None, self._predictor_with("trajectory", params)
    else:
      pose = self._predictor_with("pose", params)
      traj = (self._predictor_with("trajectory", trajectory_params)
              if self.trajectory_model is not None and trajectory_params is not None else None)
    return evaluate(pose, self.sequences, self.info,
                    per_subject=bool(ev.per_subject) and not validation,
                    noise_std_px=0.0 if validation else float(ev.noise_std),
                    seed=int(ev.get("seed", 0)), progress=progress,
                    max_frames=int(ev.max_frames), trajectory=traj,
                    known_size=bool(ev.get("known_size", False)) and not validation)

  def validate(self, params) -> dict[str, float]:
    """Average errors (mm) for training's validation: ``{'p1': .., ...}`` for a pose
    model, ``{'mrpe': .., ...}`` for a trajectory model."""
    average = self(params, validation=True)["average"]
    return {k: float(v) for k, v in average.items() if v is not None}

  def _predictor_with(self, which: str, params) -> Predictor:
    local = parallel.local_copy(params)  # host copies; valid for multi-process global arrays
    if which not in self._predictors:
      kwargs = dict(batch_size=int(self.eval_cfg.batch_size), flip=bool(self.eval_cfg.flip),
                    mesh=self.mesh)
      self._predictors[which] = (
          make_predictor(self.model, local, self.info, **kwargs) if which == "pose"
          else make_trajectory_predictor(self.trajectory_model, local, self.info, **kwargs))
    else:
      predictor = self._predictors[which]
      predictor.params = jax.tree.map(
          lambda old, new: jax.device_put(new, old.sharding), predictor.params, local)
    return self._predictors[which]


def run_eval(config, checkpoint_dir, output=None, *, progress: bool = True) -> dict:
  """``eval.py``: loads a checkpoint and the test split, evaluates, optionally writes JSON.

  The architecture comes from the checkpoint's stored config; `config`
  supplies the data (`config.data`) and the protocol (`config.eval`). A pose
  checkpoint that holds a trajectory model (`checkpoint.load_trajectory`) is
  scored with both.
  Raises `PoseFormerError` subclasses for user-facing problems.
  """
  model, params, ckpt_config = checkpoint.load_checkpoint(checkpoint_dir)
  _warn_architecture(config, ckpt_config)
  trajectory = None if architectures.is_trajectory(model) else checkpoint.load_trajectory(
      checkpoint_dir)
  dataset.ensure_synthetic(config.data)
  sequences, info = dataset.load_sequences(config.data, "test")
  evaluator = Evaluator(config, model, sequences, info,
                        trajectory_model=trajectory[0] if trajectory else None)
  results = evaluator(params, trajectory_params=trajectory[1] if trajectory else None,
                      progress=progress)
  if output:
    write_json_atomic(output, results)
  return results


def run_baseline(config, name: str, output=None, *, progress: bool = True) -> dict:
  """``eval.py --trajectory_baseline=pinhole``: a no-learning trajectory, calibrated on
  ``config.data.subjects_train`` and scored on the test split like a trajectory model."""
  if name != "pinhole":
    raise ConfigError(f"unknown trajectory baseline {name!r}; the one baseline is 'pinhole'")
  dataset.ensure_synthetic(config.data)
  train, _ = dataset.load_sequences(config.data, "train")
  sequences, info = dataset.load_sequences(config.data, "test")
  baseline = trajectory_baseline.PinholeBaseline.fit(train, info.root_joint)
  results = evaluate(None, sequences, info, progress=progress,
                     max_frames=int(config.eval.max_frames), trajectory=baseline)
  results["baseline"] = dataclasses.asdict(baseline)
  if output:
    write_json_atomic(output, results)
  return results


def _warn_architecture(config, ckpt_config) -> None:
  fields = ("num_frames", "kept_frames", "kept_coeffs", "num_joints")
  mine = {k: config.model.get(k) for k in fields} if "model" in config else {}
  theirs = {k: ckpt_config.model.get(k) for k in fields}
  if mine and mine != theirs:
    print(f"warning: the config's model {mine} differs from the checkpoint's {theirs}; "
        "using the checkpoint's", file=sys.stderr)
