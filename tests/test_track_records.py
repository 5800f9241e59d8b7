"""Fuzzed per-person record files (`tracks.read_tracks`) against an oracle of the format.

Each record is put together from fields drawn either from values the format accepts
(frame as ``image_id``/``frame``/``frame_id``/``frame_idx``, a number or a file name ending
in one; keypoints as J x [x, y(, s)] or a flat list of 2J/3J numbers; a track id of
letters, digits, ``_-.``; optional J scores) or from values it rejects, so the outcome of
every file is known in advance: valid files parse to exactly their tracks, frames,
points and scores, the rest raise a one-line `DataError`, and a list whose first record has no
frame key is not a records file at all (None).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from poseformer_jax.errors import DataError
from poseformer_jax.video import tracks

JOINTS = {"coco17": 17, "mediapipe33": 33}
MISSING = object()  # the key is left out


def _pick(rng, good: list, bad: list, p_good: float = 0.9):
  """(value, accepted) from `good` with probability p_good, else from `bad`."""
  if rng.random() < p_good:
    return good[rng.integers(len(good))], True
  return bad[rng.integers(len(bad))], False


def _record(rng, fmt: str, framed: bool):
  """A random record and its expected reading: (record, ok, frame, track, points, scores)."""
  j = JOINTS[fmt]
  pts = rng.uniform(10, 500, (j, 2)).round(2)
  sc = rng.uniform(0.5, 1.0, j).round(3)
  with_sc = np.c_[pts, sc]
  (kps, scores), ok_kps = _pick(rng, [
      (with_sc.tolist(), sc), (with_sc.ravel().tolist(), sc),
      (pts.ravel().tolist(), np.ones(j)), (pts.tolist(), np.ones(j))], [
      (MISSING, None), ("x", None), ([], None), ([1, 2], None), ({"a": 1}, None), (None, None),
      (with_sc[:-1].tolist(), None), ([[1, "a", 3]] * j, None), ([1.0] * (3 * j + 1), None)])
  (track_key, track, track_id), ok_track = _pick(rng, [
      (None, None, None), ("track_id", 4, "4"), ("idx", [2], "2"), ("track_id", "a-1", "a-1"),
      ("idx", 7, "7")], [
      ("track_id", "no way!", None), ("track_id", "x" * 65, None), ("idx", {"a": 1}, None)])
  given, ok_scores = _pick(rng, [MISSING, MISSING, (rng.uniform(0, 1, j).round(3))], [
      "x", [0.5] * (j - 1), {"a": 1}])
  record = {} if kps is MISSING else {"keypoints": kps}
  if track_key is not None:
    record[track_key] = track
  if given is not MISSING:
    record["keypoint_scores"] = given.tolist() if isinstance(given, np.ndarray) else given
    scores = given
  frame, ok_frame = None, True
  if framed:
    (key, value, frame), ok_frame = _pick(rng, [
        ("image_id", 7, 7), ("image_id", "frame_000012.jpg", 12), ("frame", 3, 3),
        ("frame_id", 0, 0), ("frame_idx", 5, 5)], [
        ("frame", -3, None), ("frame", 2.5, None), ("image_id", "x.jpg", None),
        ("frame", True, None), ("frame", [], None), ("frame_id", None, None),
        (MISSING, None, None)])
    if key is not MISSING:
      record[key] = value
  ok = ok_kps and ok_track and ok_scores and ok_frame
  return record, ok, frame, track_id, pts, scores


def _document(rng, fmt: str):
  """A random file's JSON document and its expected outcome: "none", "error" or the
  expected {track: {frame: (points, scores)}}."""
  n = int(rng.integers(1, 4))
  style = rng.random()
  if style < 0.1:  # per-frame keypoints, not per-person records: for `load_keypoints`
    pts = rng.uniform(10, 500, (JOINTS[fmt], 2)).round(2).tolist()
    return [[pts] * n, {"frames": [pts] * n}, []][int(rng.integers(3))], "none"
  if style < 0.7:  # a list of records (COCO results style)
    drawn = [_record(rng, fmt, framed=True) for _ in range(n)]
    doc = [d[0] for d in drawn]
    if not any(k in doc[0] for k in ("image_id", "frame", "frame_id", "frame_idx")):
      return doc, "none"
  else:  # mmpose's instance_info: the frame is the entry's frame_id
    drawn, entries = [], []
    for _ in range(n):
      rec = _record(rng, fmt, framed=False)
      (fid, frame), ok_fid = _pick(rng, [(0, 0), (9, 9), ("f_3.jpg", 3)],
                                   [(-1, None), ("x", None), (None, None), (2.5, None)])
      drawn.append((rec[0], rec[1] and ok_fid, frame, *rec[3:]))
      entries.append({"frame_id": fid, "instances": [rec[0]]})
    doc = {"instance_info": entries}
  if not all(d[1] for d in drawn):
    return doc, "error"
  ids = [d[3] for d in drawn]
  if len({i is None for i in ids}) > 1:  # some records with a track id, some without
    return doc, "error"
  expected: dict = {}
  for _, _, frame, track, pts, scores in drawn:
    if frame in expected.setdefault(track, {}):  # two records of one person in one frame
      return doc, "error"
    expected[track][frame] = (pts, np.asarray(scores, np.float64))
  return doc, expected


def _check_parsed(found: dict, expected: dict):
  """Each track's frames run from its first to its last; the points and scores are the
  file's, NaN points and zero scores where the track is absent."""
  assert set(found) == set(expected)
  for track, rows in expected.items():
    frames, kps, scores = found[track]
    np.testing.assert_array_equal(frames, np.arange(min(rows), max(rows) + 1))
    for k, frame in enumerate(frames):
      want_kps, want_scores = rows.get(frame, (np.nan, 0.0))
      np.testing.assert_array_equal(kps[k], np.broadcast_to(want_kps, kps[k].shape))
      np.testing.assert_array_equal(scores[k], np.broadcast_to(want_scores, scores[k].shape))


@pytest.mark.parametrize("fmt", list(JOINTS))
def test_fuzzed_records_parse_exactly_or_raise(tmp_path, fmt):
  rng = np.random.default_rng(0 if fmt == "coco17" else 1)
  path = tmp_path / "records.json"
  outcomes = {"ok": 0, "error": 0, "none": 0}
  for i in range(300):
    doc, expected = _document(rng, fmt)
    path.write_text(json.dumps(doc))
    if expected == "error":
      with pytest.raises(DataError) as info:
        tracks.read_tracks(path, fmt)
      assert str(path) in str(info.value) and "\n" not in str(info.value), (i, doc)
      outcomes["error"] += 1
    elif expected == "none":
      assert tracks.read_tracks(path, fmt) is None, (i, doc)
      outcomes["none"] += 1
    else:
      _check_parsed(tracks.read_tracks(path, fmt), expected)
      outcomes["ok"] += 1
  # Every outcome occurs often enough to mean something.
  assert min(outcomes.values()) >= 15, outcomes
