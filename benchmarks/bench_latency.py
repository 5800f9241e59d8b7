"""What latency costs: P1 on real Human3.6M (S8) when the network sees only N frames after the
frame it lifts, as a live stream answering N frames late does (`StreamingLifter(latency=N)`).

  python benchmarks/bench_latency.py                       # N = 0, 5, 10, 20, 40; GT 2D and SH
  python benchmarks/bench_latency.py --latencies 0,40 --sources gt --max-frames 500

The model: ``--checkpoint`` (default the shipped ``pretrained:h36m-81_1_3-5subj``, which
trained on S8 too: for held-out figures pass a model trained on S1, S5, S6, S7, such as
``h36m-81_1_3-mix`` of the repository's history). The data: the real Human3.6M mocap and
Stacked Hourglass detections of ``--data`` (default ../shared/data/h36m), read by the
project's loaders (`dataset.load_sequences`, subject ``--subject``, default S8); the
ground-truth 2D is projected by `poseformer_jax.data.prepare_h36m` into a temporary folder
that is deleted afterwards, so nothing derived from the data stays behind (a ``--data``
folder with its GT 2D prepared already is used as it is). Each N runs the standard protocol
(`evaluation.evaluate`: every frame of every sequence and camera, test-time flip, P1 / P2 /
P3 averaged over actions, MPJVE) on windows cut as the stream cuts them
(`Predictor.predict_sequences(..., latency=N)`, the poses `StreamingLifter(latency=N)` gives,
tested in tests/test_lift_wild.py): frame t sees frames t - pad .. t + N and the rest of its
window repeats frame t + N, as at a clip's end. N = pad is the offline result. Not a timing:
it may run while the machine is busy.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import common
from absl import flags

from poseformer_jax import checkpoint, config_lib, evaluation
from poseformer_jax.data import dataset, h36m, prepare_h36m

DATA = common.REPO.parent / "shared" / "data" / "h36m"
SOURCES = {"gt": "GT 2D", "sh_pt_mpii": "SH detections"}


def data_root(data: Path, tmp: Path) -> Path:
  """A folder with links to `data`'s 3D and SH files and the GT 2D projected from the 3D
  (`data` itself when it holds a prepared GT 2D file already)."""
  if h36m.find_file(data, h36m.file_2d("gt")).exists():
    return data
  for name in (h36m.FILE_3D, h36m.file_2d("sh_pt_mpii")):
    found = h36m.find_file(data, name)
    if found.exists():
      (tmp / found.name).symlink_to(found.resolve())
  if prepare_h36m.main(["--root", str(tmp)]) != 0:
    raise RuntimeError(f"could not prepare the GT 2D from {data}")
  return tmp


def evaluate_latencies(ckpt: str, root: Path, source: str, subject: str, latencies: list[int],
                       max_frames: int, batch: int) -> list[dict]:
  """The protocol's averages for each latency on `subject` with 2D `source`."""
  model, params, _ = checkpoint.load_checkpoint(ckpt)
  data = config_lib.base_config().data
  data.root, data.keypoints, data.subjects_test = str(root), source, subject
  seqs, info = dataset.load_sequences(data, "test")
  predictor = evaluation.make_predictor(model, params, info, batch_size=batch, flip=True)
  pad = (int(model.num_frames) - 1) // 2
  rows = []
  for n in latencies:
    res = evaluation.evaluate(predictor, seqs, info, latency=n, max_frames=max_frames,
                              progress=True)["average"]
    rows.append({"source": source, "latency": n, "pad": pad, "sequences": len(seqs),
                 "frames": sum(min(len(s.keypoints_2d), max_frames) if max_frames > 0
                               else len(s.keypoints_2d) for s in seqs), **res})
    print(f"{SOURCES.get(source, source)}, latency {n:2d}: P1 {res['p1']:.1f} mm, "
          f"P2 {res['p2']:.1f}, P3 {res['p3']:.1f}, MPJVE {res['mpjve']:.2f}", flush=True)
  return rows


def main(argv=None) -> int:
  fv = common.benchmark_flags()
  flags.DEFINE_string("checkpoint", "pretrained:h36m-81_1_3-5subj", "Model to score.",
                      flag_values=fv)
  flags.DEFINE_list("latencies", ["0", "5", "10", "20", "40"], "Frames of future context N.",
                    flag_values=fv)
  flags.DEFINE_list("sources", list(SOURCES), "2D sources (data.keypoints).", flag_values=fv)
  flags.DEFINE_string("subject", "S8", "Held-out subject.", flag_values=fv)
  flags.DEFINE_string("data", str(DATA), "Folder with data_3d_h36m(_train).npz and the SH file.",
                      flag_values=fv)
  flags.DEFINE_integer("max-frames", -1, "First N frames of each sequence (-1: all).",
                       flag_values=fv)
  flags.DEFINE_integer("batch", 1024, "Windows per forward pass.", flag_values=fv)
  status = common.parse_flags(fv, argv, __doc__)
  if status is not None:
    return status
  latencies = [int(n) for n in fv.latencies]
  max_frames = fv["max-frames"].value
  if fv.quick:
    latencies, max_frames = [latencies[0], latencies[-1]], 200
  data = Path(fv.data)
  if not h36m.find_file(data, h36m.FILE_3D).exists():
    print(f"error: {data}: no {h36m.FILE_3D} (the real data lives in ../shared/data/h36m)",
          file=sys.stderr)
    return 2
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    root = data_root(data, Path(tmp))
    for source in fv.sources:
      rows += evaluate_latencies(fv.checkpoint, root, source, fv.subject, latencies,
                                 max_frames, fv.batch)
  return common.report(*table(rows, fv.checkpoint, fv.subject), fv.json,
                       {"benchmark": "latency", "checkpoint": fv.checkpoint,
                        "subject": fv.subject, "max_frames": max_frames, "results": rows})


def table(rows: list[dict], ckpt: str, subject: str) -> tuple[list, list, str]:
  """(headers, rows, title): P1 per latency and source, and what each step costs."""
  sources = list(dict.fromkeys(r["source"] for r in rows))
  by = {(r["source"], r["latency"]): r for r in rows}
  headers = ["latency N (frames)", "at 30 fps", "at 50 fps"]
  for s in sources:
    name = SOURCES.get(s, s)
    headers += [f"{name} P1 mm", f"{name} vs N={rows[0]['pad']}", f"{name} MPJVE"]
  out = []
  for n in sorted({r["latency"] for r in rows}):
    cells = [n, f"{n / 30 * 1e3:.0f} ms", f"{n / 50 * 1e3:.0f} ms"]
    for s in sources:
      r, full = by.get((s, n)), by.get((s, rows[0]["pad"]))
      cells += ([r["p1"], f"{r['p1'] - full['p1']:+.1f}" if full else "-", r["mpjve"]]
                if r else ["-", "-", "-"])
    out.append(cells)
  frames = {s: next(r["frames"] for r in rows if r["source"] == s) for s in sources}
  title = (f"P1 against latency, {ckpt} (F = {2 * rows[0]['pad'] + 1}), {subject}, test-time "
           f"flip; frames: " + ", ".join(f"{SOURCES.get(s, s)} {n:,}" for s, n in frames.items()))
  return headers, out, title


if __name__ == "__main__":
  sys.exit(main())
