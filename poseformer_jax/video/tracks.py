"""Several people in files: per-person keypoint records with track ids, results keyed by track.

Input (JSON), as multi-person 2D tools write it:

* a list of per-person records (COCO results style; AlphaPose, mmpose
  ``--save-predictions`` converted, ...)::

    [{"image_id": 0 | "0.jpg", "keypoints": [x, y, s, ...] | [[x, y(, s)], ...],
      "keypoint_scores": [...] (optional), "track_id": 3 | "idx": 3}, ...]

  the frame may also be ``frame`` or ``frame_id``; a string ``image_id`` gives
  its last number (``"frame_000012.jpg"`` -> 12);
* mmpose's ``{"instance_info": [{"frame_id": 1, "instances": [{"keypoints": ...,
  "keypoint_scores": ..., "track_id": 0}, ...]}, ...]}``.

Each track spans its first to its last frame; frames where it is absent are
missing, and gaps are filled per track (`gaps.fill_gaps`). Records without
any track id are one person when every frame has at most one record, else an
error (who is who is unknown). Output (`save_npz`, `save_json`) is keyed by
track: npz arrays ``track_<id>_poses_3d`` (N, 17, 3), ``track_<id>_keypoints_2d``,
``track_<id>_filled``, ``track_<id>_frames`` (the video frame of each row) and
``track_ids``; JSON ``{"tracks": [{"track_id", "frames": [{"frame", "pose_3d",
"keypoints_2d", "filled_joints"}]}]}``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video import export, formats

_FRAME_KEYS = ("image_id", "frame", "frame_id", "frame_idx")
_JOINTS = {"coco17": 17, "mediapipe33": 33, "openpose25": 25, "h36m17": 17}


def read_tracks(path: str | os.PathLike, fmt: str) -> dict | None:
  """A per-person records JSON -> ``{track_id: (frames (N,), keypoints (N, J, 2), scores
  (N, J))}`` as the tool wrote them, in layout `fmt` (J joints, pixels; NaN keypoints and
  zero scores in the frames where the track is absent; frames consecutive from the
  track's first to its last; `formats.to_h36m` maps them). ``{None: ...}`` for records
  without ids (one person). None when the file is not a records file (a per-frame
  list, or not JSON)."""
  path = Path(path)
  if path.suffix.lower() != ".json" or not path.is_file():
    return None
  try:
    doc = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise DataError(f"{path}: unreadable JSON ({e})") from None
  try:
    records = _records(doc)
  except DataError as e:
    raise DataError(f"{path}: {e}") from None
  if records is None:
    return None
  if not records:
    raise DataError(f"{path}: no person records")
  parsed = [_parse_record(r, path, i, fmt) for i, r in enumerate(records)]
  has_id = [p[1] is not None for p in parsed]
  if any(has_id) and not all(has_id):
    raise DataError(f"{path}: record {has_id.index(False)} has no track id ('track_id' or "
                    "'idx') but others do")
  groups: dict = {}
  for frame, track, kps, scores in parsed:
    if frame in groups.setdefault(track, {}):
      who = "two people" if track is None else f"two records of track {track}"
      hint = ("; the records carry no track id ('track_id' or 'idx'): run a tracker "
              "(mmpose/AlphaPose tracking) or keep one person per frame") if track is None else ""
      raise DataError(f"{path}: frame {frame} has {who}{hint}")
    groups[track][frame] = (kps, scores)
  return {track: _track_array(frames, fmt) for track, frames in groups.items()}


def _records(doc):
  """The list of person records, or None if `doc` is not a records file."""
  if isinstance(doc, dict) and isinstance(doc.get("instance_info"), list):
    out = []
    for entry in doc["instance_info"]:
      if not isinstance(entry, dict) or not isinstance(entry.get("instances"), list):
        raise DataError("instance_info entries need 'frame_id' and an 'instances' list")
      out += [dict(inst, frame=entry.get("frame_id")) for inst in entry["instances"]
              if isinstance(inst, dict)]
    return out
  if (isinstance(doc, list) and doc and isinstance(doc[0], dict)
      and any(k in doc[0] for k in _FRAME_KEYS)):
    return doc
  return None


def _parse_record(record, path: Path, i: int, fmt: str):
  """-> (frame int, track id str or None, keypoints (J, 2), scores (J,))."""
  if not isinstance(record, dict) or "keypoints" not in record:
    raise DataError(f"{path}: record {i} has no 'keypoints'")
  frame = next((record[k] for k in _FRAME_KEYS if record.get(k) is not None), None)
  if isinstance(frame, str):
    digits = re.findall(r"\d+", frame)
    frame = int(digits[-1]) if digits else None
  if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or frame < 0:
    raise DataError(f"{path}: record {i}: no frame number ('image_id', 'frame' or 'frame_id')")
  track = record.get("track_id", record.get("idx"))
  if isinstance(track, list):  # AlphaPose writes idx as [n] in some versions
    track = track[0] if len(track) == 1 else None
  track = None if track is None else _safe_id(track, f"{path}: record {i}: ")
  try:
    arr = np.asarray(record["keypoints"], np.float64)
  except (TypeError, ValueError):
    raise DataError(f"{path}: record {i}: keypoints are not numbers") from None
  j = _JOINTS[fmt]
  if arr.ndim == 1 and arr.size in (2 * j, 3 * j):
    arr = arr.reshape(j, -1)
  if arr.ndim != 2 or arr.shape != (j, arr.shape[1]) or arr.shape[1] not in (2, 3):
    raise DataError(f"{path}: record {i}: keypoints of shape {arr.shape}; {fmt} needs {j} "
                    "joints as [x, y(, score)]")
  scores = arr[:, 2] if arr.shape[1] == 3 else np.ones(j)
  given = record.get("keypoint_scores", record.get("scores"))
  if given is not None:
    try:
      scores = np.asarray(given, np.float64).reshape(-1)
    except (TypeError, ValueError):
      raise DataError(f"{path}: record {i}: keypoint scores are not numbers") from None
    if scores.shape != (j,):
      raise DataError(f"{path}: record {i}: {scores.size} scores for {j} joints")
  return int(frame), track, arr[:, :2], scores


def _safe_id(track, where: str = "") -> str:
  text = str(track).strip()
  if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
    raise DataError(f"{where}track id {text!r}: use letters, digits, '_', '-' or '.'")
  return text


def _track_array(frames: dict, fmt: str):
  first, last = min(frames), max(frames)
  j = _JOINTS[fmt]
  raw = np.full((last - first + 1, j, 2), np.nan)
  scores = np.zeros((last - first + 1, j))
  for f, (kps, s) in frames.items():
    raw[f - first], scores[f - first] = kps, s
  return np.arange(first, last + 1), raw, scores


def records_info(path: str | os.PathLike) -> tuple[tuple[int, int] | None, float | None]:
  """(image size (w, h), fps) that a records file states in ``meta_info`` (as `save_records`
  writes them), each None when it does not."""
  try:
    meta = json.loads(Path(path).read_text()).get("meta_info")
  except (OSError, ValueError, AttributeError):
    return None, None
  if not isinstance(meta, dict):
    return None, None
  try:
    size = (int(meta["width"]), int(meta["height"])) if "width" in meta else None
    fps = float(meta["fps"]) if meta.get("fps") else None
  except (KeyError, TypeError, ValueError):
    raise DataError(f"{path}: meta_info width/height/fps are not numbers") from None
  return size, fps


def save_records(path: str | os.PathLike, found: dict, *, width: int, height: int,
                 fps: float | None, layout: str) -> Path:
  """Writes detected people as an mmpose-style records file that `read_tracks` reads:
  ``{"meta_info": {"layout", "width", "height", "fps"}, "instance_info": [{"frame_id",
  "instances": [{"track_id", "keypoints": [[x, y], ...], "keypoint_scores": [...]}]}]}``.

  found: ``{track id: (frames (N,), keypoints (N, J, 2) pixels, scores (N, J))}`` in
  `layout`; frames where a track's keypoints are NaN hold no record of it.
  """
  frames: dict[int, list] = {}
  for track in sort_ids(found):
    for f, kps, scores in zip(*found[track]):
      if np.isfinite(kps).all():
        frames.setdefault(int(f), []).append(
            {"track_id": track, "keypoints": kps.astype(np.float64).tolist(),  # exact values:
             "keypoint_scores": scores.astype(np.float64).tolist()})  # they lift the same
  doc = {"meta_info": {"layout": layout, "width": int(width), "height": int(height),
                       "fps": float(fps) if fps else None},
         "instance_info": [{"frame_id": f, "instances": frames[f]} for f in sorted(frames)]}
  path = Path(path)
  path.write_text(json.dumps(doc, separators=(",", ":")))
  return path


def sort_ids(ids) -> list:
  """Track ids in natural order (numbers numerically; None, a file without ids, first)."""
  return sorted(ids, key=lambda t: (-1, 0, "") if t is None else (0, int(t), "")
                if str(t).isdigit() else (1, 0, str(t)))


# --- outputs ------------------------------------------------------------------------------------

def save_npz(path: str | os.PathLike, results: list[dict], *, fps: float | None,
             image_size) -> Path:
  """results: one dict per track with ``track`` (its id), ``frames`` (N,) and the arrays of
  `export.result_arrays` (``poses_3d``, ``keypoints_2d``, ``filled``, ``low_confidence``,
  ...), each written as ``track_<id>_<name>``."""
  arrays = {"track_ids": np.array([r["track"] for r in results]),
            "fps": np.float64(fps if fps else np.nan),
            "image_size": np.array(image_size if image_size else (0, 0), np.int64),
            "joint_names": np.array(formats.H36M_JOINT_NAMES),
            "parents": np.array(formats.H36M_PARENTS, np.int64),
            "coordinates": np.str_(export.COORDINATES)}
  for r in results:
    key = f"track_{r['track']}"
    arrays[f"{key}_frames"] = np.asarray(r["frames"], np.int64)
    for name, a in _arrays(r).items():
      arrays[f"{key}_{name}"] = a
  path = Path(path)
  with open(path, "wb") as f:
    np.savez(f, **arrays)
  return path


def save_json(path: str | os.PathLike, results: list[dict], *, fps: float | None,
              image_size) -> Path:
  """The same as JSON: ``{..., "tracks": [{"track_id", "frames": [rows of
  `export.frame_rows`]}]}``."""
  doc = export.header(fps, image_size)
  doc["tracks"] = [{"track_id": r["track"], "frames": export.frame_rows(r["frames"], _arrays(r))}
                   for r in results]
  path = Path(path)
  path.write_text(json.dumps(doc, separators=(",", ":")))
  return path


def _arrays(result: dict) -> dict:
  rest = {k: v for k, v in result.items() if k not in ("track", "frames")}
  return export.result_arrays(**rest)
