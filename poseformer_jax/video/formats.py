"""2D keypoint files from common detectors, mapped to the Human3.6M 17-joint layout.

Every reader returns keypoints in **pixels**, shape (T, 17, 2), in the H36M
order the model was trained on, with NaN where a joint is missing (no
detection in that frame, or a confidence below ``min_score``). Gaps are
filled afterwards by `poseformer_jax.gaps.fill_gaps`.

H36M-17 order (index: name)::

   0 pelvis      1 R hip     2 R knee     3 R ankle    4 L hip     5 L knee
   6 L ankle     7 spine     8 thorax     9 neck/nose 10 head     11 L shoulder
  12 L elbow    13 L wrist  14 R shoulder 15 R elbow  16 R wrist

"Left" and "right" are the *person's* left and right in every format (as in
Human3.6M); nothing is mirrored or swapped on the way in.

Supported formats (``fmt``)
---------------------------
``coco17``
  COCO-17 order (mmpose, rtmlib, ultralytics, detectron2): 0 nose, 1/2 L/R eye,
  3/4 L/R ear, 5/6 L/R shoulder, 7/8 elbows, 9/10 wrists, 11/12 hips,
  13/14 knees, 15/16 ankles. Files: ``.npz`` with ``keypoints`` (T, 17, 2) or
  (T, 17, 3) (third column = score) and optionally ``scores`` (T, 17),
  ``width``, ``height``, ``fps``; or ``.json``: a list with one entry per frame
  (``null``/``[]`` = no detection), each entry 17 ``[x, y]``/``[x, y, score]``
  pairs, a flat list of 34 or 51 numbers, or a dict with ``keypoints`` (and
  optionally ``scores``); the top level may also be a dict with ``frames`` (or
  ``keypoints``) plus optional ``width``, ``height``, ``fps``.
``mediapipe33``
  MediaPipe Pose landmarks (33, even = right, odd = left), the layout of
  ``shared/data/video/*_mediapipe33.npz``: ``keypoints`` (T, 33, 2) pixels,
  ``visibility`` (T, 33), ``detected`` (T,), ``width``, ``height``, ``fps``.
  The 17 COCO-equivalent landmarks (nose, eye centres, ears, shoulders, elbows,
  wrists, hips, knees, ankles) are picked and mapped as COCO-17; the
  ``visibility`` is the score. Hands, feet, mouth and inner/outer eye points are
  not used. MediaPipe's hip landmarks sit somewhat higher and wider than COCO's.
``openpose25``
  OpenPose BODY_25: a folder of per-frame ``*_keypoints.json`` files (sorted by
  name, natural order) or one such file; ``people[0].pose_keypoints_2d`` =
  75 numbers (x, y, confidence) x 25. A frame with no person is missing.
  Joints are mapped as COCO-17 (OpenPose's own ``Neck`` and ``MidHip`` are the
  shoulder and hip midpoints and are recomputed as below). No image size is
  stored: pass it (``--image-size`` or ``--video``).
``h36m17``
  Already in the H36M order above (e.g. the upstream demo's ``keypoints.npz``):
  ``.npz`` with ``keypoints`` (T, 17, 2|3) (or ``reconstruction`` (1, T, 17, 2),
  the upstream demo's key) or ``.json`` like ``coco17``. Passed through.

Missing joints: confidence below ``min_score`` (per-format default
`DEFAULT_MIN_SCORE`), NaN/inf coordinates, or exactly (0, 0) (many detectors'
"not found"); a frame marked not detected, or with no person, is all missing.

Derived joints (COCO-17, and so MediaPipe and OpenPose)
-------------------------------------------------------
* pelvis (0)  = midpoint of the two hips;
* thorax (8)  = midpoint of the two shoulders;
* spine (7)   = midpoint of pelvis and thorax (the upstream demo's starting
  point before its small empirical nudges, which are not reproduced);
* neck/nose (9) = the nose;
* head (10)   = the nose reflected through the midpoint of the eyes
  (``2 * mid(eyes) - nose``: above the eyes by the eye-nose distance, close
  to H36M's head joint); if an eye or the nose is missing, the midpoint of the
  ears; missing if neither is available.
A derived joint is missing when any joint it is computed from is missing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from poseformer_jax.data import skeleton
from poseformer_jax.errors import DataError

FORMATS = ("coco17", "mediapipe33", "openpose25", "h36m17")

# The model's joint layout (single source: `poseformer_jax.data.skeleton`).
H36M_JOINT_NAMES = skeleton.JOINT_NAMES
H36M_PARENTS = skeleton.PARENTS
H36M_LEFT = skeleton.JOINTS_LEFT
H36M_RIGHT = skeleton.JOINTS_RIGHT

COCO_JOINT_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
    "r_ankle")

# H36M index <- COCO index for the joints that exist in both.
_H36M_FROM_COCO = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0,
                   11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
# COCO-17 <- MediaPipe Pose 33 (eye *centres* 2/5, not inner/outer corners).
MEDIAPIPE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
# COCO-17 <- OpenPose BODY_25.
OPENPOSE25_TO_COCO = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)

# Confidence below which a joint counts as missing, per format. OpenPose writes
# (0, 0, 0) for undetected joints; MediaPipe's visibility is low (~0.2) for
# occluded-but-plausible limbs, so its threshold is lower than a heatmap score's.
DEFAULT_MIN_SCORE = {"coco17": 0.3, "mediapipe33": 0.2, "openpose25": 0.1, "h36m17": 0.3}

_SCORE_KEYS = ("scores", "keypoint_scores", "keypoints_scores", "confidence", "visibility")


def coco_to_h36m(coco: np.ndarray) -> np.ndarray:
  """(..., 17, 2) COCO-17 (NaN = missing) -> (..., 17, 2) H36M-17 (see module doc)."""
  coco = np.asarray(coco, np.float64)
  if coco.shape[-2:] != (17, 2):
    raise ValueError(f"expected (..., 17, 2) COCO keypoints, got {coco.shape}")
  out = np.full(coco.shape, np.nan)
  for h, c in _H36M_FROM_COCO.items():
    out[..., h, :] = coco[..., c, :]
  mid = lambda a, b: (coco[..., a, :] + coco[..., b, :]) / 2  # noqa: E731  NaN propagates
  out[..., 0, :] = mid(11, 12)
  out[..., 8, :] = mid(5, 6)
  out[..., 7, :] = (out[..., 0, :] + out[..., 8, :]) / 2
  head = 2 * mid(1, 2) - coco[..., 0, :]
  ears = mid(3, 4)
  use_ears = np.isnan(head).any(-1, keepdims=True)
  out[..., 10, :] = np.where(use_ears, ears, head)
  return out


def mask_low_scores(keypoints: np.ndarray, scores: np.ndarray | None, min_score: float
                    ) -> np.ndarray:
  """NaN where scores < min_score (or are NaN), where a coordinate is not finite, and at
  exactly (0, 0) (how many detectors write "not found"). keypoints (T, J, 2), scores (T, J)."""
  keypoints = np.array(keypoints, np.float64)
  if scores is not None:
    scores = np.asarray(scores, np.float64)
    bad = ~(scores >= min_score)
    keypoints[bad] = np.nan
  keypoints[~np.isfinite(keypoints).all(-1) | (keypoints == 0).all(-1)] = np.nan
  return keypoints


def load_keypoints(path: str | os.PathLike, fmt: str, *, min_score: float | None = None
                   ) -> tuple[np.ndarray, tuple[int, int] | None, float | None]:
  """Reads a keypoint file and maps it to H36M-17.

  Args:
    path: a file (``.npz``/``.json``) or, for ``openpose25``, a folder of per-frame JSON.
    fmt: one of `FORMATS`.
    min_score: joints with a confidence below this are missing (default per
      format, `DEFAULT_MIN_SCORE`). Files without scores keep every finite joint.
  Returns:
    ``(keypoints, image_size, fps)``: keypoints (T, 17, 2) float64 pixels,
    NaN where missing; image_size ``(width, height)`` or None when the file does
    not say; fps or None.
  Raises:
    DataError: unknown format, missing/unreadable file, wrong layout.
  """
  raw, scores, detected, size, fps = read_keypoints(path, fmt)
  return to_h36m(raw, scores, fmt, min_score, detected), size, fps


def read_keypoints(path: str | os.PathLike, fmt: str):
  """A keypoint file as its tool wrote it, in its own layout, no threshold applied.

  Returns:
    ``(keypoints, scores, detected, image_size, fps)``: keypoints (T, J, 2)
    float64 pixels (J = 33 for ``mediapipe33``, 25 for ``openpose25``, else 17),
    scores (T, J) or None, detected (T,) bool or None, image_size and fps or
    None. `to_h36m` maps them (`load_keypoints` does both).
  """
  if fmt not in FORMATS:
    raise DataError(f"unknown keypoint format {fmt!r}; choose one of {', '.join(FORMATS)}")
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: no such keypoint file")
  if fmt == "openpose25":
    raw, scores = _read_openpose(path)
    return raw, scores, None, None, None
  raw, scores, meta = _read_array_file(path, fmt)
  n_in = 33 if fmt == "mediapipe33" else 17
  if raw.ndim != 3 or raw.shape[1] != n_in or raw.shape[2] not in (2, 3):
    raise DataError(f"{path}: keypoints have shape {raw.shape}; {fmt} needs (T, {n_in}, 2) "
                    f"or (T, {n_in}, 3)")
  if raw.shape[2] == 3:
    scores = raw[..., 2] if scores is None else scores
    raw = raw[..., :2]
  if scores is not None and scores.shape != raw.shape[:2]:
    raise DataError(f"{path}: scores have shape {scores.shape}, keypoints {raw.shape}")
  return raw, scores, meta.get("detected"), meta.get("size"), meta.get("fps")


def to_h36m(keypoints, scores, fmt: str, min_score: float | None = None, detected=None
            ) -> np.ndarray:
  """Detector output in layout `fmt` -> (T, 17, 2) H36M-17 pixels, NaN where missing.

  keypoints (T, J, 2) pixels (J = 33 for ``mediapipe33``, else 17), scores
  (T, J) or None, detected (T,) bool or None (False = the whole frame is
  missing). The same mapping `load_keypoints` applies to files.
  """
  if min_score is None:
    min_score = DEFAULT_MIN_SCORE[fmt]
  kps = mask_low_scores(keypoints, scores, min_score)
  if detected is not None:
    kps[~np.asarray(detected, bool)] = np.nan
  if fmt == "mediapipe33":
    kps = coco_to_h36m(kps[:, MEDIAPIPE_TO_COCO])
  elif fmt == "openpose25":
    kps = coco_to_h36m(kps[:, OPENPOSE25_TO_COCO])
  elif fmt == "coco17":
    kps = coco_to_h36m(kps)
  return kps


def to_h36m_and_estimates(keypoints, scores, fmt: str, min_score: float | None = None,
                          detected=None) -> tuple[np.ndarray, np.ndarray]:
  """`to_h36m` twice: ``(keypoints, estimates)``, both (T, 17, 2) H36M-17 pixels. The first
  drops joints below `min_score`; the second keeps every position the detector gave, whatever
  its confidence (NaN only where it gave none): the low-confidence fallback of
  `poseformer_jax.gaps.use_estimates`."""
  return (to_h36m(keypoints, scores, fmt, min_score, detected),
          to_h36m(keypoints, scores, fmt, -np.inf, detected))


def layout_of(path: str | os.PathLike) -> str | None:
  """The ``layout`` an npz keypoint file declares (as this project writes them), else None."""
  path = Path(path)
  if path.suffix.lower() != ".npz" or not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      layout = str(f["layout"]) if "layout" in f.files else None
  except Exception:  # unreadable: load_keypoints reports it properly
    return None
  return layout if layout in FORMATS else None


def save_keypoints(path: str | os.PathLike, keypoints, scores, detected, *, width: int,
                   height: int, fps: float | None, layout: str = "mediapipe33") -> Path:
  """Writes detector keypoints in the project's npz keypoint format (as the shared
  ``*_mediapipe33.npz``): ``keypoints`` float32 (T, J, 2) pixels (NaN where no person),
  ``visibility`` float32 (T, J), ``detected`` bool (T,), ``width``, ``height``, ``fps``
  (NaN if unknown) and ``layout``. `load_keypoints(path, layout)` reads it back."""
  if layout not in FORMATS:
    raise DataError(f"unknown keypoint layout {layout!r}")
  kps = np.asarray(keypoints, np.float32)
  vis = np.asarray(scores, np.float32)
  det = np.asarray(detected, bool)
  if kps.ndim != 3 or kps.shape[2] != 2 or vis.shape != kps.shape[:2] or det.shape != kps.shape[:1]:
    raise DataError(f"keypoints {kps.shape}, scores {vis.shape}, detected {det.shape} do not "
                    "match (T, J, 2), (T, J), (T,)")
  path = Path(path)
  with open(path, "wb") as f:  # np.savez on a path would append '.npz' to other suffixes
    np.savez(f, keypoints=kps, visibility=vis, detected=det, width=np.int64(width),
             height=np.int64(height), fps=np.float64(fps if fps else np.nan),
             layout=np.str_(layout))
  return path


# --- readers ------------------------------------------------------------------------------------

def _read_array_file(path: Path, fmt: str):
  """npz or JSON -> (keypoints (T, J, 2|3) float64, scores (T, J) or None, meta dict)."""
  if path.is_dir():
    raise DataError(f"{path}: is a folder; {fmt} needs a .npz or .json file")
  suffix = path.suffix.lower()
  if suffix == ".npz":
    return _read_npz(path, fmt)
  if suffix == ".json":
    return _read_json(path)
  raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; use .npz or .json")


def _read_npz(path: Path, fmt: str):
  try:
    with np.load(path, allow_pickle=False) as f:
      data = {k: f[k] for k in f.files}
  except Exception as e:  # zipfile/numpy raise many types for damaged files
    raise DataError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None
  layout = str(data["layout"]) if "layout" in data else None
  if layout is not None and layout != fmt:
    raise DataError(f"{path}: file says layout {layout!r} but --format is {fmt!r}")
  if "keypoints" in data:
    kps = data["keypoints"]
  elif "reconstruction" in data:  # upstream demo's keypoints.npz: (1, T, 17, 2)
    kps = data["reconstruction"]
    if kps.ndim == 4 and kps.shape[0] == 1:
      kps = kps[0]
  else:
    raise DataError(f"{path}: no 'keypoints' array (has {', '.join(sorted(data)) or 'nothing'})")
  kps = _as_float(kps, path, "keypoints")
  scores = next((data[k] for k in _SCORE_KEYS if k in data), None)
  if scores is not None:
    scores = _as_float(scores, path, "scores")
  meta = {"size": _image_size(data.get("width"), data.get("height"), data.get("image_size"), path),
          "fps": _fps(data.get("fps"), path)}
  if kps.ndim < 1:
    raise DataError(f"{path}: 'keypoints' is a scalar, expected (T, joints, 2 or 3)")
  if "detected" in data:
    det = np.asarray(data["detected"]).astype(bool).reshape(-1)
    if det.shape[0] != kps.shape[0]:
      raise DataError(f"{path}: 'detected' has {det.shape[0]} frames, keypoints {kps.shape[0]}")
    meta["detected"] = det
  return kps, scores, meta


def _read_json(path: Path):
  try:
    doc = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise DataError(f"{path}: unreadable JSON ({e})") from None
  meta = {}
  frames = doc
  if isinstance(doc, dict):
    frames = doc.get("frames", doc.get("keypoints"))
    meta["size"] = _image_size(doc.get("width"), doc.get("height"), doc.get("image_size"), path)
    meta["fps"] = _fps(doc.get("fps"), path)
  if not isinstance(frames, list) or not frames:
    raise DataError(f"{path}: expected a non-empty list of frames (or a dict with 'frames')")
  parsed = [_json_frame(f, path, i) for i, f in enumerate(frames)]
  n_joints = {p[0].shape[0] for p in parsed if p is not None}
  if len(n_joints) > 1:
    raise DataError(f"{path}: frames have different numbers of joints {sorted(n_joints)}")
  if not n_joints:
    raise DataError(f"{path}: no frame has any keypoints (no usable frames)")
  j = n_joints.pop()
  kps = np.full((len(parsed), j, 2), np.nan)
  scores = np.ones((len(parsed), j))
  for i, p in enumerate(parsed):
    if p is not None:
      kps[i], scores[i] = p
  return kps, scores, meta


def _json_frame(frame, path: Path, i: int):
  """One JSON frame -> ((J, 2) xy, (J,) scores) or None for 'no detection'."""
  scores = None
  if isinstance(frame, dict):
    scores = frame.get("scores", frame.get("keypoint_scores"))
    frame = frame.get("keypoints")
  if frame is None or (isinstance(frame, list) and len(frame) == 0):
    return None
  try:
    arr = np.asarray(frame, np.float64)
  except (TypeError, ValueError):
    raise DataError(f"{path}: frame {i}: keypoints are not numbers") from None
  if arr.ndim == 1:
    if arr.size in (34, 51):  # flat x,y[,s] list (COCO annotation style)
      arr = arr.reshape(17, -1)
    else:
      raise DataError(f"{path}: frame {i}: flat list of {arr.size} numbers; expected 34 or 51")
  if arr.ndim != 2 or arr.shape[1] not in (2, 3):
    raise DataError(f"{path}: frame {i}: keypoints of shape {arr.shape}; expected (J, 2) or (J, 3)")
  s = arr[:, 2] if arr.shape[1] == 3 else np.ones(arr.shape[0])
  if scores is not None:
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.shape[0] != arr.shape[0]:
      raise DataError(f"{path}: frame {i}: {s.shape[0]} scores for {arr.shape[0]} joints")
  return arr[:, :2], s


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _read_openpose(path: Path):
  """-> keypoints (T, 25, 2) and scores (T, 25) of ``people[0]`` (NaN / 0 without a person)."""
  files = ([path] if path.is_file() else
           sorted((p for p in path.iterdir() if p.suffix.lower() == ".json"),
                  key=lambda p: _natural_key(p.name)))
  if not files:
    raise DataError(f"{path}: no OpenPose *.json files in this folder")
  kps = np.full((len(files), 25, 2), np.nan)
  scores = np.zeros((len(files), 25))
  for i, f in enumerate(files):
    try:
      doc = json.loads(f.read_text())
    except (OSError, ValueError) as e:
      raise DataError(f"{f}: unreadable JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
      raise DataError(f"{f}: not an OpenPose file (no 'people' list)")
    if not doc["people"]:
      continue
    if not isinstance(doc["people"][0], dict):
      raise DataError(f"{f}: people[0] is not an object")
    flat = doc["people"][0].get("pose_keypoints_2d")
    try:
      arr = np.asarray(flat, np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
      raise DataError(f"{f}: people[0].pose_keypoints_2d is not a list of numbers") from None
    if arr.shape[0] != 25:
      raise DataError(f"{f}: pose_keypoints_2d has {arr.shape[0]} joints; BODY_25 needs 25 "
                      "(75 numbers)")
    kps[i], scores[i] = arr[:, :2], arr[:, 2]
  return kps, scores


def _as_float(a, path: Path, what: str) -> np.ndarray:
  try:
    return np.asarray(a, np.float64)
  except (TypeError, ValueError):
    raise DataError(f"{path}: '{what}' is not numeric (dtype {np.asarray(a).dtype})") from None


def _image_size(width, height, image_size, path: Path):
  if image_size is not None and width is None:
    vals = np.asarray(image_size).reshape(-1)
    if vals.size != 2:
      raise DataError(f"{path}: image_size must be (width, height), got {vals.tolist()}")
    width, height = vals
  if width is None or height is None:
    return None
  try:
    w, h = int(np.asarray(width)), int(np.asarray(height))
  except (TypeError, ValueError):
    raise DataError(f"{path}: width/height are not integers") from None
  return (w, h)


def _fps(fps, path: Path):
  if fps is None:
    return None
  try:
    value = float(np.asarray(fps))
  except (TypeError, ValueError):
    raise DataError(f"{path}: fps is not a number") from None
  return value if np.isfinite(value) and value > 0 else None
