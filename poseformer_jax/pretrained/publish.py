"""Turns a training run into a shipped model: float16 weights, learning curve, model card.

    python -m poseformer_jax.pretrained.publish --workdir=RUN --name=h36m-81_1_3-5subj \\
        --eval_json=gt.json[,sh.json] --eval_labels="GT 2D,SH detections" \\
        --command="python train.py ..." --hardware="2-core CPU"

Reads the run's best checkpoint (``RUN/best``, else the latest), writes its
parameters in float16 as ``poseformer_jax/pretrained/NAME/`` (the project's
checkpoint format; `load_checkpoint("pretrained:NAME")` widens them to float32),
plots ``RUN/log.jsonl`` (train loss and validation P1 per epoch) to
``NAME.png`` and writes the model card ``NAME.md`` from the evaluation JSON
files that ``eval.py --output`` wrote. The stored config keeps the recipe but
not the machine's data path (``data.root`` is reset to its default).

The card's check line needs the published weights, so it is a second call:

    python eval.py --checkpoint=pretrained:NAME --config.data.root=DATA \
        <pretrained.CHECK_FLAGS> --output=check.json
    python -m poseformer_jax.pretrained.publish ... --card_only --check_json=check.json

``--prior_workdirs`` lists the runs a ``train.init_from`` run continued; their
logs lead the curve and the step count. ``--average_with`` ships a uniform
model soup: the mean of this run's best parameters and those of other runs
that share its initialisation (e.g. a run and the run it continued); the card
says which runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging

from poseformer_jax import checkpoint as ckpt_lib
from poseformer_jax import config_lib
from poseformer_jax import pretrained
from poseformer_jax.errors import PoseFormerError

HERE = Path(__file__).resolve().parent
MAX_SHIPPED_BYTES = 30 * 1024 * 1024  # every shipped model together (the repo travels to GPUs)

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to publish.")
_NAME = flags.DEFINE_string("name", None, "Model name, e.g. h36m-81_1_3-5subj.")
_EVAL_JSON = flags.DEFINE_list("eval_json", [], "eval.py --output files (first = headline).")
_EVAL_LABELS = flags.DEFINE_list("eval_labels", [], "One label per eval JSON (2D source).")
_COMMAND = flags.DEFINE_string("command", "", "The exact training command, for the card.")
_HARDWARE = flags.DEFINE_string("hardware", "", "Where it trained, for the card.")
_NOTES = flags.DEFINE_string("notes_file", None, "Markdown appended to the card (data, caveats).")
_OUT = flags.DEFINE_string("out", str(HERE), "Folder of shipped models.")
_PRIOR = flags.DEFINE_list("prior_workdirs", [], "Earlier runs this one continued "
                           "(train.init_from), oldest first: their logs lead the curve.")
_AVERAGE = flags.DEFINE_list("average_with", [], "Other runs (or checkpoints) whose best "
                             "parameters are averaged with this run's (a uniform model soup).")
_CARD_ONLY = flags.DEFINE_bool("card_only", False, "Keep the already published weights; "
                                "rewrite only the card and the curve (e.g. with --check_json).")
_CHECK_JSON = flags.DEFINE_string("check_json", None, "eval.py --output of the published "
                                  "weights with pretrained.CHECK_FLAGS (the card's check line).")
_TRAJ = flags.DEFINE_string("trajectory_workdir", None, "A trajectory model's training run: its "
                            "best parameters ship as NAME/trajectory/ (float16), and the card "
                            "gains the root-trajectory section (eval JSONs of the bundle).")
_TRAJ_AVERAGE = flags.DEFINE_list("trajectory_average_with", [], "Other trajectory runs averaged "
                                  "with it (a uniform model soup).")
_TRAJ_COMMAND = flags.DEFINE_string("trajectory_command", "", "The trajectory's training command.")
_SIBLING = flags.DEFINE_string("sibling", None, "For a model whose training subjects include its "
                               "test subjects (e.g. all five): the subjects of the sibling run "
                               "trained the same way without them, whose eval JSONs --eval_json "
                               "gives (e.g. S1,S5,S6,S7).")
_BASELINE_JSON = flags.DEFINE_list("baseline_json", [], "eval.py --trajectory_baseline=pinhole "
                                   "outputs, one per --eval_json (the card's baseline rows).")


def read_log(workdir: Path) -> list[dict]:
  """The epoch records of a run's log.jsonl (later records of a resumed epoch win)."""
  by_epoch = {}
  path = workdir / "log.jsonl"
  if not path.is_file() and workdir.name in ("checkpoints", "best"):
    path = workdir.parent / "log.jsonl"  # a run's checkpoint folder: the run's log
  if path.is_file():
    for line in path.read_text().splitlines():
      try:
        rec = json.loads(line)
      except ValueError:
        continue
      if rec.get("kind") == "epoch":
        by_epoch[int(rec["epoch"])] = rec
  return [by_epoch[k] for k in sorted(by_epoch)]


def read_lineage(workdirs: list[Path]) -> list[dict]:
  """Epoch records of runs that continued one another, steps and epochs made cumulative."""
  out, step0, epoch0 = [], 0, 0
  for stage, workdir in enumerate(workdirs):
    records = read_log(workdir)
    for r in records:
      out.append({**r, "step": r["step"] + step0, "epoch": r["epoch"] + epoch0, "stage": stage})
    if records:
      step0, epoch0 = out[-1]["step"], out[-1]["epoch"]
  return out


def half_params(params):
  """float32 parameter tree -> float16 host arrays (what is shipped)."""
  return jax.tree.map(lambda x: np.asarray(x, np.float16), params)


def average_params(trees: list) -> dict:
  """The element-wise mean of parameter trees of one architecture (float64 sum, float32 out)."""
  return jax.tree.map(lambda *xs: (sum(np.asarray(x, np.float64) for x in xs) / len(xs)
                                   ).astype(np.float32), *trees)


def write_weights(workdir: Path, out_dir: Path, average_with: list[Path] = ()):
  """Writes the run's best parameters (averaged with those of `average_with`) in float16;
  returns (config, float32 params)."""
  _, params, config = ckpt_lib.load_checkpoint(workdir)
  if average_with:
    others = [ckpt_lib.load_checkpoint(p)[1] for p in average_with]
    for other, where in zip(others, average_with):
      ckpt_lib.check_params_match(other, params, str(where))
    params = average_params([params] + others)
  clean = config_lib.base_config()
  config.data.root = clean.data.root  # no machine path in a shipped file
  if out_dir.exists():
    raise PoseFormerError(f"{out_dir}: exists; remove it to publish again")
  ckpt_lib.save_params(out_dir, half_params(params), config)
  return config, params


def plot_curve(records: list[dict], png: Path, title: str, val_key: str = "val_p1",
               val_label: str = "validation P1 on S8 (mm)",
               loss_label: str = "train loss (MPJPE, mm)") -> None:
  """Train loss and the validation error (mm) per epoch, one PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  steps = [r["step"] for r in records]
  fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
  for r0, r1 in zip(records, records[1:]):
    if r1.get("stage", 0) != r0.get("stage", 0):  # a continued run starts here
      ax.axvline(r0["step"], color="grey", ls=":", lw=1)
  ax.plot(steps, [r["train_loss_mm"] for r in records], "o-", label=loss_label)
  val = [(r["step"], r[val_key]) for r in records if r.get(val_key) is not None]
  if val:
    ax.plot(*zip(*val), "s-", label=val_label)
  ax.set_xlabel("optimizer step")
  ax.set_ylabel("mm")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  ax2 = ax.twinx()
  ax2.plot(steps, [r["lr"] for r in records], color="grey", alpha=0.4, lw=1)
  ax2.set_ylabel("learning rate (grey)")
  fig.tight_layout()
  fig.savefig(png)
  plt.close(fig)


def action_table(results: list[dict], labels: list[str]) -> str:
  """Markdown: one row per action, P1/P2/P3 for each evaluated 2D source."""
  head = "| action | " + " | ".join(f"{lab} P1 | P2 | P3" for lab in labels) + " |"
  sep = "|---|" + "---:|" * (3 * len(labels))
  rows = [head, sep]
  actions = list(results[0]["actions"])
  for name in actions + ["**Average**"]:
    cells = []
    for res in results:
      entry = res["average"] if name == "**Average**" else res["actions"].get(name, {})
      cells += [f"{entry[k]:.1f}" if entry.get(k) is not None else "-" for k in ("p1", "p2", "p3")]
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(rows)


def size_of(folder: Path) -> int:
  return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def held_out_heading(data, sibling: str | None) -> tuple[list[str], list[str]]:
  """The card's accuracy heading and the note under its headline (markdown lines). A model
  that trained on its test subjects shows the figures of its `sibling` (trained on the
  subjects given instead, the same way)."""
  test, train = data.subjects_test, data.subjects_train
  seen = set(test.split(",")) & set(train.split(","))
  if not seen:
    return [f"## Held-out accuracy ({test}, never seen in training)", ""], []
  if not sibling:
    raise PoseFormerError(f"the model trained on its test subjects ({','.join(sorted(seen))}): "
                          "give --sibling with the subjects of the run that held them out")
  return [f"## Held-out accuracy ({test}, of the sibling trained on {sibling})", ""], [
          f"This model trained on `{train}`, {test} included, as the paper's protocol does "
          "(its test subjects are S9 and S11: `eval.py --config.data.subjects_test=S9,S11` "
          f"for those who have them). These figures are those of its sibling, trained "
          f"the same way (same start, recipe and number of steps) on `{sibling}`, for which "
          f"{test} is unseen.", ""]


def card_text(name: str, config, records: list[dict], results: list[dict], labels: list[str],
              command: str, hardware: str, size: int, notes: str,
              check: dict | None = None, average_with: tuple = (),
              extra: list[str] = (), sibling: str | None = None) -> str:
  """The model card (markdown). `records` may span several continued runs (`read_lineage`)."""
  m, t, d = config.model, config.train, config.data
  hours = sum(r.get("epoch_time_s", 0.0) for r in records) / 3600.0
  steps = records[-1]["step"] if records else 0
  best = min((r for r in records if r.get("val_p1") is not None),
             key=lambda r: r["val_p1"], default=None)
  kept = "last" if sibling else "best-validation"
  heading, sibling_note = held_out_heading(d, sibling)
  headline = " · ".join(f"{lab}: P1 {res['average']['p1']:.1f} / P2 {res['average']['p2']:.1f} "
                        f"/ P3 {res['average']['p3']:.1f} mm" for lab, res in zip(labels, results))
  lines = [
      f"# `pretrained:{name}`", "",
      f"PoseFormerV2 {m.num_frames}_{m.kept_frames}_{m.kept_coeffs} (F={m.num_frames} frames, "
      f"f={m.kept_frames} kept frames, n={m.kept_coeffs} DCT coefficients, 17 Human3.6M joints "
      "in, 17 joints out, metres, root-relative, camera frame), trained by this project on "
      "Human3.6M.", "",
      "**Licence:** trained on Human3.6M, which is for non-commercial research only; so are "
      "these weights.", "",
      "```python",
      "from poseformer_jax import load_checkpoint",
      f'model, params, config = load_checkpoint("pretrained:{name}")',
      "```", "",
      f"Also: `python eval.py --checkpoint=pretrained:{name} ...`, "
      f"`poseformer-jax lift --checkpoint pretrained:{name} ...`.", "",
      *heading,
      headline, "",
      *sibling_note,
      f"Full protocol of `eval.py`: every frame of every {d.subjects_test} sequence and camera, "
      "test-time flip, P1 = MPJPE, P2 = after rigid (Procrustes) alignment, "
      "P3 = after scale alignment, millimetres.", "",
      action_table(results, labels), "",
      "## Training", "",
      f"- Data: Human3.6M subjects `{d.subjects_train}` (validation and test: `{d.subjects_test}`), "
      f"2D input `{d.keypoints}`"
      + (f" plus a copy of every training sequence with `{d.keypoints_mix}` 2D (detection mix, "
         "`data.keypoints_mix`)" if d.get("keypoints_mix") else "")
      + f", every frame (downsample {d.downsample}), flip augmentation, "
      f"2D input noise with a per-sample std uniform in [0, {d.noise_std}] (normalised units; "
      f"{d.noise_std * 500:.0f} px on a 1000-px camera).",
      f"- Recipe `{config.get('recipe', 'upstream')}`: AdamW, peak lr {t.learning_rate}, "
      f"schedule `{t.schedule}` (warm-up {t.warmup_steps} steps, end at "
      f"{t.end_lr_ratio} x peak), weight decay {t.weight_decay}, gradient clipping "
      f"{t.grad_clip_norm}, batch {t.batch_size}, drop path {m.drop_path_rate}; "
      f"{len(records)} epochs of {t.max_steps_per_epoch} steps = {steps} steps "
      f"({steps * t.batch_size:,} samples)"
      + (f" over {1 + records[-1].get('stage', 0)} continued runs (the last one's recipe "
         "above; see the notes)." if records and records[-1].get("stage", 0) else "."),
      f"- Hardware and time: {hardware}; {hours:.2f} h of training steps logged in "
      "`log.jsonl` (validation excluded).",
      (f"- Validation P1 during training: {d.subjects_test} is in this model's training set "
       "(no held-out figure; the sibling's are above)." if sibling else
       f"- Best validation P1 during training: "
       + (f"{best['val_p1']:.2f} mm at step {best['step']} (first {config.eval.max_frames} "
          f"frames of each {d.subjects_test} sequence)." if best else "none.")),
      (f"- Shipped: the mean of the {kept} parameters of this run and of "
       f"{len(average_with)} other run(s) sharing its initialisation (a uniform model soup; "
       "see the notes)" if average_with else f"- Shipped: the {kept} parameters")
      + f" in float16 ({size / 1e6:.1f} MB); loading widens them to float32.",
      "", "Command:", "", "```", command, "```", "",
  ]
  if check is not None:
    lines += [
        f"{pretrained.CHECK_LINE}: {check['average']['p1']:.3f} mm (`python eval.py "
        f"--checkpoint=pretrained:{name} {' '.join(pretrained.CHECK_FLAGS)}`: S8, GT 2D, the "
        "first 200 frames of each sequence and camera, flip, float16 weights as shipped; "
        "`tests/test_pretrained.py` re-runs it and allows 0.5 mm).", ""]
  lines += [
      f"![learning curve]({name}.png)", "",
  ]
  lines += list(extra)
  if notes:
    lines += [notes.strip(), ""]
  return "\n".join(lines)


ROOT_KEYS = ("mrpe", "mrpe_x", "mrpe_y", "mrpe_z", "abs_mpjpe")


def trajectory_table(results: list[dict], labels: list[str]) -> str:
  """Markdown: one row per action, MRPE (x/y/z) and absolute MPJPE per evaluated 2D source."""
  head = "| action | " + " | ".join(f"{lab} MRPE | x | y | z | abs. MPJPE" for lab in labels) + " |"
  rows = [head, "|---|" + "---:|" * (len(ROOT_KEYS) * len(labels))]
  for name in list(results[0]["actions"]) + ["**Average**"]:
    cells = []
    for res in results:
      entry = res["average"] if name == "**Average**" else res["actions"].get(name, {})
      cells += [f"{entry[k]:.0f}" if entry.get(k) is not None else "-" for k in ROOT_KEYS]
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(rows)


def trajectory_section(name: str, config, records: list[dict], results: list[dict],
                       labels: list[str], baselines: list[dict], command: str, hardware: str,
                       size: int, check: dict | None, sibling: str | None = None) -> list[str]:
  """The card's root-trajectory section (markdown lines); `config` is the trajectory model's."""
  m, t, d = config.model, config.train, config.data
  hours = sum(r.get("epoch_time_s", 0.0) for r in records) / 3600.0
  steps = records[-1]["step"] if records else 0
  best = min((r for r in records if r.get("val_mrpe") is not None),
             key=lambda r: r["val_mrpe"], default=None)
  lines = [
      "## Root trajectory (where the person is)", "",
      f"`pretrained:{name}` carries a trajectory model (`trajectory/`, "
      f"{size / 1e6:.1f} MB in float16): from {m.num_frames} frames of 2D rays (pixels over the "
      "focal length, so any camera) to the root joint's camera-frame position, metres. "
      "`lift` adds it to every output; `eval.py` scores it: MRPE (mean root position error, "
      "the Euclidean distance between the predicted and the true root), its x/y/z parts and "
      "the absolute MPJPE (pose + root against the true camera-frame joints), mm."
      + (f" The figures are those of the sibling trained on `{sibling}` ({d.subjects_test} "
         "unseen), pose and trajectory." if sibling else ""), "",
      " · ".join(f"{lab}: MRPE {res['average']['mrpe']:.0f} mm" for lab, res in
                 zip(labels, results)), "",
      trajectory_table(results, labels), ""]
  for lab, base in zip(labels, baselines):
    lines.append(f"- No-learning pinhole baseline (`eval.py --trajectory_baseline=pinhole`: depth "
                 f"from the summed 2D bone lengths and the training subjects' mean skeleton), "
                 f"{lab}: MRPE {base['average']['mrpe']:.0f} mm.")
  lines += [
      f"- Data: subjects `{d.subjects_train}` (test `{d.subjects_test}`), 2D `{d.keypoints}`"
      + (f" plus `{d.keypoints_mix}`" if d.get("keypoints_mix") else "")
      + f", flip, ray noise up to {d.noise_std}, a random camera rotation per window (tilt, pan, "
      f"roll up to {', '.join(f'{a:g}' for a in d.camera_rotation)} degrees), roots rescaled to "
      f"the reference person's size ({d.reference_bones} m of summed bones).",
      f"- Recipe: AdamW, peak lr {t.learning_rate}, `{t.schedule}`, batch {t.batch_size}, "
      f"{len(records)} epochs of {t.max_steps_per_epoch} steps = {steps} steps; loss: the root's "
      "Euclidean error over its true depth.",
      f"- Hardware and time: {hardware}; {hours:.2f} h of training steps.",
      (f"- Validation MRPE during training: {d.subjects_test} is in this model's training set "
       "(the figures above are the sibling's)." if sibling else
       "- Best validation MRPE: " + (f"{best['val_mrpe']:.1f} mm at step {best['step']} (first "
                                     f"{config.eval.max_frames} frames of each test sequence)."
                                     if best else "none.")),
      "", "Command:", "", "```", command, "```", ""]
  if check is not None and check["average"].get("mrpe") is not None:
    lines += [f"{pretrained.CHECK_MRPE_LINE}: {check['average']['mrpe']:.1f} mm (the check "
              "subset above; `tests/test_pretrained.py` allows 2 mm).", ""]
  lines += [f"![trajectory learning curve]({name}-trajectory.png)", ""]
  return lines


def publish_trajectory(out: Path, name: str, results: list[dict], labels: list[str],
                       check: dict | None) -> list[str]:
  """Writes NAME/trajectory/ (unless there) and its curve; returns the card's section."""
  target = out / name / ckpt_lib.TRAJECTORY_DIR
  if not target.exists():
    write_weights(Path(_TRAJ.value), target, [Path(p) for p in _TRAJ_AVERAGE.value])
  _, _, config = ckpt_lib.load_checkpoint(target)
  records = read_log(Path(_TRAJ.value))
  plot_curve(records, out / f"{name}-trajectory.png", f"pretrained:{name} trajectory",
             val_key="val_mrpe", val_label="validation MRPE (mm)",
             loss_label="train loss (root error / depth, x1000)")
  baselines = [json.loads(Path(p).read_text()) for p in _BASELINE_JSON.value]
  return trajectory_section(name, config, records, results, labels, baselines,
                            _TRAJ_COMMAND.value, _HARDWARE.value, size_of(target), check,
                            _SIBLING.value)


def main(argv) -> int:
  del argv
  logging.set_verbosity(logging.ERROR)  # orbax logs every save step at INFO
  try:
    if not _WORKDIR.value or not _NAME.value:
      raise PoseFormerError("--workdir and --name are required")
    workdir, out = Path(_WORKDIR.value), Path(_OUT.value)
    labels = _EVAL_LABELS.value or [Path(p).stem for p in _EVAL_JSON.value]
    if len(labels) != len(_EVAL_JSON.value) or not labels:
      raise PoseFormerError("give one --eval_labels entry per --eval_json file (at least one)")
    results = [json.loads(Path(p).read_text()) for p in _EVAL_JSON.value]
    if _CARD_ONLY.value:
      _, _, config = ckpt_lib.load_checkpoint(out / _NAME.value)
    else:
      config, _ = write_weights(workdir, out / _NAME.value, [Path(p) for p in _AVERAGE.value])
    size = size_of(out / _NAME.value)
    total = sum(size_of(p) for p in out.iterdir() if p.is_dir())
    if total > MAX_SHIPPED_BYTES:
      print(f"warning: shipped weights total {total / 1e6:.1f} MB, over the 30 MiB budget",
            file=sys.stderr)
    records = read_lineage([Path(p) for p in _PRIOR.value] + [workdir])
    check = json.loads(Path(_CHECK_JSON.value).read_text()) if _CHECK_JSON.value else None
    plot_curve(records, out / f"{_NAME.value}.png", f"pretrained:{_NAME.value}")
    notes = Path(_NOTES.value).read_text() if _NOTES.value else ""
    extra = (publish_trajectory(out, _NAME.value, results, labels, check) if _TRAJ.value
             else [])
    (out / f"{_NAME.value}.md").write_text(card_text(
        _NAME.value, config, records, results, labels, _COMMAND.value, _HARDWARE.value, size,
        notes, check, tuple(_AVERAGE.value), extra, _SIBLING.value))
  except (PoseFormerError, OSError, ValueError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"published pretrained:{_NAME.value} ({size / 1e6:.1f} MB) in {out}")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
