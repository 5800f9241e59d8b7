"""BVH skeleton animation of lifted poses (Blender & co.), and reading it back.

* Axes: Y up, right-handed, metres (``scale`` multiplies, e.g. 100 for cm).
  Camera space (x, y, z) becomes BVH (x, -y, -z), a 180 degree rotation about
  x: a person facing the camera faces +Z, their left is +X. Blender reads it
  with File > Import > Motion Capture (.bvh) (defaults: forward -Z, up Y,
  scale 1.0) and turns it into an armature with one action.
* Hierarchy, rooted at the pelvis (channels: X/Y/Z position, then Z, X, Y
  rotation, degrees; all other joints Z, X, Y rotation): every H36M joint is a
  BVH joint of the same name (``pelvis``, ``r_hip``, ... as
  `formats.H36M_JOINT_NAMES`). The two joints with several children (pelvis:
  hips and spine; thorax: neck and shoulders) get one zero-length helper joint
  per child (``pelvis_to_r_hip``, ``thorax_to_l_shoulder``, ...) so that
  each bone has its own rotation (a single rotation cannot place three
  children whose relative layout changes). Ankles, wrists and head end in an
  ``End Site``.
* Rest pose (OFFSETs): a T-pose (legs and spine vertical, hips, shoulders and
  arms horizontal) with each bone's length = the clip's median length of
  that bone.
* Motion: root position = the pelvis position (zero for root-relative
  poses). Pelvis and thorax rotations are the body frames spanned by their
  right-to-left child axis and the up-going child (identity at rest). Every
  other joint's rotation is the *swing* that turns its bone's rest direction
  into the observed direction, expressed in the parent's frame (the smallest
  such rotation). The twist about a bone's own axis cannot be recovered from
  joint positions; it is set to the minimum, so limbs do not spin in Blender,
  but a mesh skinned to the armature will not show forearm or shin twist.
* Round trip: forward kinematics of the file (`read_bvh_positions`)
  reproduces the input joint positions to ~1e-6 m when bone lengths are the
  same in every frame (as for a rigid skeleton). Lifted poses have slightly
  varying bone lengths; then every bone keeps its observed *direction* but
  has the median length, so a joint's error is the accumulated length
  deviation of the bones between it and the pelvis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from poseformer_jax.errors import DataError
from poseformer_jax.video.export import check_poses
from poseformer_jax.video.formats import H36M_JOINT_NAMES, H36M_PARENTS


# Camera space -> BVH (Y up): 180 degrees about x. Its own inverse.
_CAM_TO_BVH = np.diag([1.0, -1.0, -1.0])

# Rest (T-pose) direction of the bone ending at each joint, BVH axes (person's left = +X).
_REST_DIR = {1: (-1, 0, 0), 2: (0, -1, 0), 3: (0, -1, 0), 4: (1, 0, 0), 5: (0, -1, 0),
             6: (0, -1, 0), 7: (0, 1, 0), 8: (0, 1, 0), 9: (0, 1, 0), 10: (0, 1, 0),
             11: (1, 0, 0), 12: (1, 0, 0), 13: (1, 0, 0), 14: (-1, 0, 0), 15: (-1, 0, 0),
             16: (-1, 0, 0)}
# Joints with several children: (right child, left child, up child) define their frame.
_FRAME_JOINTS = {0: (1, 4, 7), 8: (14, 11, 9)}
_END_SITE_FRACTION = 0.25  # End Site length, as a fraction of the last bone


def _children(j: int) -> list[int]:
  return [c for c, p in enumerate(H36M_PARENTS) if p == j]


def _bvh_nodes():
  """Depth-first BVH joints: list of (name, parent_node, kind, h36m_index).

  kind: 'root' (the pelvis), 'frame' (thorax), 'branch' (zero-length helper
  for bone parent->h36m_index), 'bone' (H36M joint whose single child bone it
  rotates), 'end' (no children: ankles, wrists, head).
  """
  nodes = []

  def visit(j: int, parent: int):
    kids = _children(j)
    kind = "root" if j == 0 else ("frame" if len(kids) > 1 else ("bone" if kids else "end"))
    nodes.append((H36M_JOINT_NAMES[j], parent, kind, j))
    me = len(nodes) - 1
    if len(kids) > 1:
      for c in kids:
        nodes.append((f"{H36M_JOINT_NAMES[j]}_to_{H36M_JOINT_NAMES[c]}", me, "branch", c))
        visit(c, len(nodes) - 1)
    elif kids:
      visit(kids[0], me)

  visit(0, -1)
  return nodes


def _normalize(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
  n = np.linalg.norm(v, axis=-1, keepdims=True)
  return np.where(n > 1e-9, v / np.maximum(n, 1e-12), fallback)


def _swing(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Smallest rotations taking unit vectors u (3,) to v (T, 3): (T, 3, 3)."""
  u = np.broadcast_to(u, v.shape)
  k = np.cross(u, v)
  s2 = np.sum(k * k, -1)[:, None, None]
  c = np.sum(u * v, -1)[:, None, None]
  kx = _skew(k)
  eye = np.eye(3)
  r = eye + kx + kx @ kx * ((1 - c) / np.maximum(s2, 1e-30))
  # Opposite vectors: 180 degrees about any axis perpendicular to u.
  flip = (c[:, 0, 0] < -1 + 1e-12) & (s2[:, 0, 0] < 1e-20)
  if flip.any():
    uu = u[flip]
    e = np.eye(3)[np.argmin(np.abs(uu), -1)]
    axis = _normalize(np.cross(uu, e), e)
    r[flip] = 2 * axis[:, :, None] * axis[:, None, :] - eye
  same = (c[:, 0, 0] > 1 - 1e-12) & (s2[:, 0, 0] < 1e-20)
  r[same] = eye
  return r


def _skew(k: np.ndarray) -> np.ndarray:
  z = np.zeros(k.shape[:-1])
  return np.stack([np.stack([z, -k[..., 2], k[..., 1]], -1),
                   np.stack([k[..., 2], z, -k[..., 0]], -1),
                   np.stack([-k[..., 1], k[..., 0], z], -1)], -2)


def _frame(right: np.ndarray, up: np.ndarray) -> np.ndarray:
  """Rotation with columns x = right->left axis, y = up (orthogonalised), z = x cross y."""
  x = _normalize(right, np.array([1.0, 0, 0]))
  y = up - np.sum(up * x, -1, keepdims=True) * x
  y = _normalize(y, np.array([0, 1.0, 0]))
  bad = np.abs(np.sum(y * x, -1, keepdims=True)) > 0.5  # up parallel to right: any normal
  y = np.where(bad, _normalize(np.cross(np.array([0, 0, 1.0]), x), np.array([0, 1.0, 0])), y)
  z = np.cross(x, y)
  return np.stack([x, y, z], -1)


def _rot_zxy(r: np.ndarray) -> np.ndarray:
  """(T, 3, 3) rotations -> (T, 3) degrees (z, x, y) with R = Rz(z) Rx(x) Ry(y)."""
  sx = np.clip(r[:, 2, 1], -1.0, 1.0)
  x = np.arcsin(sx)
  cx = np.sqrt(r[:, 2, 0] ** 2 + r[:, 2, 2] ** 2)
  y = np.arctan2(-r[:, 2, 0], r[:, 2, 2])
  z = np.arctan2(-r[:, 0, 1], r[:, 1, 1])
  lock = cx < 1e-6  # x = +-90 degrees: only z +- y is determined; put it all in z
  y = np.where(lock, 0.0, y)
  z = np.where(lock, np.arctan2(r[:, 1, 0], r[:, 0, 0]), z)
  return np.degrees(np.stack([z, x, y], -1))


def _axis_rot(axis: str, deg: np.ndarray) -> np.ndarray:
  a = np.radians(deg)
  c, s = np.cos(a), np.sin(a)
  o, i = np.zeros_like(a), np.ones_like(a)
  rows = {"X": [[i, o, o], [o, c, -s], [o, s, c]],
          "Y": [[c, o, s], [o, i, o], [-s, o, c]],
          "Z": [[c, -s, o], [s, c, o], [o, o, i]]}[axis]
  return np.stack([np.stack(r, -1) for r in rows], -2)


def bone_lengths(poses_3d) -> np.ndarray:
  """(T, 17, 3) -> (17,) median length of the bone ending at each joint (0 for the pelvis)."""
  poses = np.asarray(poses_3d, np.float64)
  par = np.array(H36M_PARENTS)
  lengths = np.linalg.norm(poses[:, 1:] - poses[:, par[1:]], axis=-1)
  return np.concatenate([[0.0], np.median(lengths, axis=0)])


def write_bvh(path: str | os.PathLike, poses_3d, fps: float, *, scale: float = 1.0) -> Path:
  """Writes (T, 17, 3) camera-space poses (metres) as a BVH animation (see module doc).

  Args:
    path: output ``.bvh``.
    poses_3d: (T, 17, 3), H36M-17 order.
    fps: frames per second (Frame Time = 1 / fps).
    scale: multiplies all lengths (1 = metres, 100 = centimetres).
  """
  poses = check_poses(poses_3d)
  if not fps or not np.isfinite(fps) or fps <= 0:
    raise DataError(f"fps must be positive for BVH, got {fps}")
  p = poses @ _CAM_TO_BVH.T * scale  # (T, 17, 3) BVH axes
  t = p.shape[0]
  lengths = bone_lengths(p)
  nodes = _bvh_nodes()
  par = H36M_PARENTS

  # Global rotation of every node, frame by frame.
  glob = [None] * len(nodes)
  for n, (name, parent, kind, j) in enumerate(nodes):
    rp = np.broadcast_to(np.eye(3), (t, 3, 3)) if parent < 0 else glob[parent]
    if kind in ("root", "frame"):
      right, left, up = _FRAME_JOINTS[j]
      glob[n] = _frame(p[:, left] - p[:, right], p[:, up] - p[:, j])
    elif kind == "end":
      glob[n] = rp
    else:
      # The bone this node rotates: branch -> (parent joint, j); bone -> (j, its child).
      a, b = (par[j], j) if kind == "branch" else (j, _children(j)[0])
      rest = np.asarray(_REST_DIR[b], np.float64)
      d_world = p[:, b] - p[:, a]
      d_local = np.einsum("tji,tj->ti", rp, d_world)  # R_parent^T d
      d_local = _normalize(d_local, rest)
      glob[n] = rp @ _swing(rest, d_local)

  offsets, local = [], []
  for n, (name, parent, kind, j) in enumerate(nodes):
    if kind == "root":
      offsets.append(np.zeros(3))
    elif kind == "branch":
      offsets.append(np.zeros(3))
    else:
      offsets.append(np.asarray(_REST_DIR[j], np.float64) * lengths[j])
    rp = np.broadcast_to(np.eye(3), (t, 3, 3)) if parent < 0 else glob[parent]
    local.append(_rot_zxy(np.swapaxes(rp, -1, -2) @ glob[n]))

  lines = ["HIERARCHY"]
  depth_of = {}
  open_stack: list[int] = []

  def close_until(parent: int):
    while open_stack and open_stack[-1] != parent:
      k = open_stack.pop()
      lines.append("  " * depth_of[k] + "}")

  for n, (name, parent, kind, j) in enumerate(nodes):
    close_until(parent)
    depth = 0 if parent < 0 else depth_of[parent] + 1
    depth_of[n] = depth
    ind = "  " * depth
    lines.append(f"{ind}{'ROOT' if kind == 'root' else 'JOINT'} {name}")
    lines.append(f"{ind}{{")
    lines.append(f"{ind}  OFFSET {_fmt(offsets[n])}")
    if kind == "root":
      lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    else:
      lines.append(f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation")
    if kind == "end":
      tip = np.asarray(_REST_DIR[j], np.float64) * lengths[j] * _END_SITE_FRACTION
      lines += [f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {_fmt(tip)}", f"{ind}  }}"]
    open_stack.append(n)
  close_until(-1)

  motion = np.concatenate([p[:, 0]] + local, axis=1)  # (T, 3 + 3 * nodes)
  lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.8f}"]
  lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
  path = Path(path)
  path.write_text("\n".join(lines) + "\n")
  return path


def _fmt(v) -> str:
  return " ".join(f"{x:.6f}" for x in v)


def read_bvh(path: str | os.PathLike) -> tuple[list[str], np.ndarray, float]:
  """Forward kinematics of any BVH file.

  Returns ``(names, positions, frame_time)``: joint names (End Sites left out),
  positions (T, n_joints, 3) in the file's axes and units, and the frame time
  in seconds. Rotation channels compose in the order listed (R = R1 R2 R3).
  """
  path = Path(path)
  try:
    tokens = path.read_text().split()
  except OSError as e:
    raise DataError(f"{path}: cannot read BVH ({e})") from None
  try:
    return _parse_bvh(tokens)
  except (ValueError, IndexError, KeyError) as e:
    raise DataError(f"{path}: malformed BVH ({type(e).__name__}: {e})") from None


def _parse_bvh(tokens: list[str]):
  i = 0
  if tokens[i] != "HIERARCHY":
    raise ValueError("no HIERARCHY")
  i += 1
  names, parents, offsets, channels = [], [], [], []
  stack: list[int] = []
  in_end = 0
  while tokens[i] != "MOTION":
    tok = tokens[i]
    if tok in ("ROOT", "JOINT"):
      names.append(tokens[i + 1])
      parents.append(stack[-1] if stack else -1)
      offsets.append(np.zeros(3))
      channels.append([])
      i += 2
    elif tok == "End":
      in_end += 1
      i += 2  # 'End Site'
    elif tok == "{":
      if not in_end:
        stack.append(len(names) - 1)
      i += 1
    elif tok == "}":
      if in_end:
        in_end -= 1
      else:
        stack.pop()
      i += 1
    elif tok == "OFFSET":
      if not in_end:
        offsets[-1] = np.array([float(v) for v in tokens[i + 1:i + 4]])
      i += 4
    elif tok == "CHANNELS":
      n = int(tokens[i + 1])
      channels[-1] = tokens[i + 2:i + 2 + n]
      i += 2 + n
    else:
      raise ValueError(f"unexpected token {tok!r}")
  if tokens[i + 1] != "Frames:" or tokens[i + 3:i + 5] != ["Frame", "Time:"]:
    raise ValueError("bad MOTION header")
  n_frames = int(tokens[i + 2])
  frame_time = float(tokens[i + 5])
  n_ch = sum(len(c) for c in channels)
  values = np.array([float(v) for v in tokens[i + 6:]])
  if values.size != n_frames * n_ch:
    raise ValueError(f"{values.size} motion values, expected {n_frames} x {n_ch}")
  values = values.reshape(n_frames, n_ch)

  pos = np.zeros((n_frames, len(names), 3))
  rot = [None] * len(names)
  col = 0
  for k in range(len(names)):
    trans = np.broadcast_to(offsets[k], (n_frames, 3)).copy()
    r = np.broadcast_to(np.eye(3), (n_frames, 3, 3)).copy()
    for ch in channels[k]:
      v = values[:, col]
      col += 1
      if ch.endswith("position"):
        trans[:, "XYZ".index(ch[0])] += v
      elif ch.endswith("rotation"):
        r = r @ _axis_rot(ch[0], v)
      else:
        raise ValueError(f"unknown channel {ch!r}")
    if parents[k] < 0:
      pos[:, k] = trans
      rot[k] = r
    else:
      pr = rot[parents[k]]
      pos[:, k] = pos[:, parents[k]] + np.einsum("tij,tj->ti", pr, trans)
      rot[k] = pr @ r
  return names, pos, frame_time


def read_bvh_positions(path: str | os.PathLike, *, scale: float = 1.0) -> np.ndarray:
  """Joint positions of a BVH written by `write_bvh`: (T, 17, 3), H36M order,
  camera-space axes (x right, y down, z forward), lengths divided by ``scale``."""
  names, pos, _ = read_bvh(path)
  index = {n: k for k, n in enumerate(names)}
  missing = [n for n in H36M_JOINT_NAMES if n not in index]
  if missing:
    raise DataError(f"{path}: not an H36M-17 BVH (no joints {', '.join(missing[:4])}...)")
  out = pos[:, [index[n] for n in H36M_JOINT_NAMES]] / scale
  return out @ _CAM_TO_BVH.T
