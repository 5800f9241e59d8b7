"""Human3.6M cameras (as data) and the camera geometry used with them.

Units: 3D points in metres; pixel coordinates in pixels of the camera's
image (`res_w` x `res_h`); normalised screen coordinates map x in [0, w] to
[-1, 1] and y to [-h/w, h/w] (aspect kept). Extrinsic translations are
stored in millimetres as published and converted to metres by `camera()`.

The numbers are the published Human3.6M calibration (as tabulated in
VideoPose3D's ``common/h36m_dataset.py``): four intrinsic sets, indexed by
camera 0..3, and per-subject extrinsics (orientation quaternion w, x, y, z of
camera-to-world; camera centre in world millimetres).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Intrinsics per camera index 0..3: id, focal length (px), principal point (px),
# radial k1..k3, tangential p1 p2, resolution (w, h) px.
_INTRINSICS = (
    ("54138969", (1145.0494384765625, 1143.7811279296875), (512.54150390625, 515.4514770507812),
     (-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043),
     (-0.0009756988729350269, -0.00142447161488235), (1000, 1002)),
    ("55011271", (1149.6756591796875, 1147.5916748046875), (508.8486328125, 508.0649108886719),
     (-0.1942136287689209, 0.2404085397720337, 0.006819975562393665),
     (-0.0016190266469493508, -0.0027408944442868233), (1000, 1000)),
    ("58860488", (1149.1407470703125, 1148.7989501953125), (519.8158569335938, 501.40264892578125),
     (-0.2083381861448288, 0.25548800826072693, -0.0024604974314570427),
     (0.0014843869721516967, -0.0007599993259645998), (1000, 1000)),
    ("60457274", (1145.5113525390625, 1144.77392578125), (514.9682006835938, 501.88201904296875),
     (-0.198384091258049, 0.21832367777824402, -0.008947807364165783),
     (-0.0005872055771760643, -0.0018133620033040643), (1000, 1002)),
)

# Extrinsics per subject, per camera index: (orientation w,x,y,z; translation mm).
_EXTRINSICS = {
    "S1": (
        ((0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088),
         (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        ((0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205),
         (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        ((0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696),
         (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        ((0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435),
         (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        ((0.1467377245426178, -0.162370964884758, -0.7551892995834351, 0.6178938746452332),
         (2097.3916015625, 4880.94482421875, 1605.732421875)),
        ((0.6159758567810059, -0.7626792192459106, -0.15728192031383514, 0.1189815029501915),
         (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        ((0.14291371405124664, -0.12907841801643372, 0.7678384780883789, -0.6110143065452576),
         (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        ((0.5920479893684387, -0.7814217805862427, 0.1274748593568802, -0.15036417543888092),
         (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        ((0.1337897777557373, -0.15692396461963654, -0.7571090459823608, 0.6198879480361938),
         (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        ((0.6147197484970093, -0.7628812789916992, -0.16174767911434174, 0.11819244921207428),
         (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        ((0.1529948115348816, -0.13529130816459656, 0.7646096348762512, -0.6112781167030334),
         (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        ((0.5916101336479187, -0.7804774045944214, 0.12832270562648773, -0.1561593860387802),
         (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        ((0.1435241848230362, -0.1631336808204651, -0.7548328638076782, 0.6188824772834778),
         (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        ((0.6141672730445862, -0.7638262510299683, -0.1596645563840866, 0.1177929937839508),
         (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        ((0.14550060033798218, -0.12874816358089447, 0.7660516500473022, -0.6127139329910278),
         (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        ((0.5912848114967346, -0.7821764349937439, 0.12445473670959473, -0.15196487307548523),
         (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        ((0.14110587537288666, -0.15589867532253265, -0.7561917304992676, 0.619644045829773),
         (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        ((0.6169601678848267, -0.7647668123245239, -0.14846350252628326, 0.11158157885074615),
         (2219.965576171875, -5148.453125, 1613.0440673828125)),
        ((0.1471444070339203, -0.13377119600772858, 0.7670128345489502, -0.6100369691848755),
         (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        ((0.5927824378013611, -0.7825870513916016, 0.12147816270589828, -0.14631995558738708),
         (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        ((0.15540587902069092, -0.15548215806484222, -0.7532095313072205, 0.6199594736099243),
         (2044.45849609375, 4935.1171875, 1481.2275390625)),
        ((0.618784487247467, -0.7634735107421875, -0.14132238924503326, 0.11933968216180801),
         (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        ((0.13357827067375183, -0.1367100477218628, 0.7689454555511475, -0.6100738644599915),
         (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        ((0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822),
         (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        ((0.15232472121715546, -0.15442320704460144, -0.7547563314437866, 0.6191070079803467),
         (2098.440185546875, 4926.5546875, 1500.278564453125)),
        ((0.6189449429512024, -0.7600917220115662, -0.15300633013248444, 0.1255258321762085),
         (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        ((0.14943228662014008, -0.15650227665901184, 0.7681233882904053, -0.6026304364204407),
         (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        ((0.5894251465797424, -0.7818877100944519, 0.13991211354732513, -0.14715361595153809),
         (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}

SUBJECTS = tuple(_EXTRINSICS)
NUM_CAMERAS = 4


@dataclasses.dataclass(frozen=True)
class Camera:
  """One calibrated Human3.6M camera.

  Attributes:
    id: camera serial number.
    focal_length: (2,) fx, fy in pixels.
    center: (2,) principal point cx, cy in pixels.
    radial: (3,) k1, k2, k3.
    tangential: (2,) p1, p2.
    res_w, res_h: image size in pixels.
    orientation: (4,) quaternion w, x, y, z rotating camera axes to world axes.
    translation: (3,) camera centre in world coordinates, metres.
  """
  id: str
  focal_length: np.ndarray
  center: np.ndarray
  radial: np.ndarray
  tangential: np.ndarray
  res_w: int
  res_h: int
  orientation: np.ndarray
  translation: np.ndarray

  @property
  def image_size(self) -> tuple[int, int]:
    """(w, h) in pixels."""
    return (self.res_w, self.res_h)


def camera(subject: str, index: int) -> Camera:
  """The calibrated camera `index` (0..3) of `subject` ('S1', ..., 'S11')."""
  if subject not in _EXTRINSICS:
    raise KeyError(f"no Human3.6M calibration for subject {subject!r}; known: {', '.join(SUBJECTS)}")
  cam_id, f, c, k, p, (w, h) = _INTRINSICS[index]
  q, t_mm = _EXTRINSICS[subject][index]
  f64 = lambda v: np.asarray(v, np.float64)
  return Camera(id=cam_id, focal_length=f64(f), center=f64(c), radial=f64(k), tangential=f64(p),
                res_w=w, res_h=h, orientation=f64(q), translation=f64(t_mm) / 1000.0)


def cameras(subject: str) -> tuple[Camera, ...]:
  """The four cameras of `subject`, index order 0..3."""
  return tuple(camera(subject, i) for i in range(NUM_CAMERAS))


# ---------------------------------------------------------------- geometry

def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
  """(4,) unit quaternion (w, x, y, z) -> (3, 3) rotation matrix R with R v = q v q^-1."""
  w, x, y, z = np.asarray(q, np.float64)
  return np.array([
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ])


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Rotates vectors `v` (..., 3) by the unit quaternion `q` (4,) = (w, x, y, z); float64."""
  return np.asarray(v, np.float64) @ quaternion_to_matrix(q).T


def qinverse(q: np.ndarray) -> np.ndarray:
  """Inverse (conjugate) of a unit quaternion (w, x, y, z)."""
  q = np.asarray(q, np.float64)
  return np.concatenate([q[:1], -q[1:]])


def world_to_camera(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
  """(..., 3) world points (metres) -> camera frame (metres), float64.

  `orientation` is the camera-to-world quaternion and `translation` the
  camera centre in world metres: X_cam = R^-1 (X_world - t).
  """
  return qrot(qinverse(orientation), np.asarray(x, np.float64) - translation)


def camera_to_world(x: np.ndarray, orientation: np.ndarray, translation: np.ndarray) -> np.ndarray:
  """(..., 3) camera-frame points (metres) -> world (metres), float64. Inverse of `world_to_camera`."""
  return qrot(orientation, np.asarray(x, np.float64)) + translation


def project(x: np.ndarray, focal_length, center, radial=(0.0, 0.0, 0.0),
            tangential=(0.0, 0.0)) -> np.ndarray:
  """Projects camera-frame points (..., 3) (metres, z > 0) to pixels (..., 2).

  Pinhole with Human3.6M's distortion: u = x/z, v = y/z clipped to [-1, 1];
  r2 = u^2 + v^2; radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3; tan = p1 u + p2 v;
  (u, v)' = (u, v) (radial + tan) + (p1, p2) r2; pixel = f (u, v)' + c.
  """
  x = np.asarray(x, np.float64)
  uv = np.clip(x[..., :2] / x[..., 2:3], -1.0, 1.0)
  r2 = np.sum(uv ** 2, axis=-1, keepdims=True)
  k = np.asarray(radial, np.float64)
  p = np.asarray(tangential, np.float64)
  rad = 1.0 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
  tan = np.sum(p * uv, axis=-1, keepdims=True)
  uv = uv * (rad + tan) + p * r2
  return np.asarray(focal_length, np.float64) * uv + np.asarray(center, np.float64)


def distort_rays(uv: np.ndarray, radial=(0.0, 0.0, 0.0), tangential=(0.0, 0.0)) -> np.ndarray:
  """Human3.6M's lens model on pinhole rays (..., 2) (x/z, y/z): the distorted rays, float64."""
  uv = np.asarray(uv, np.float64)
  r2 = np.sum(uv ** 2, axis=-1, keepdims=True)
  k = np.asarray(radial, np.float64)
  p = np.asarray(tangential, np.float64)
  rad = 1.0 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
  tan = np.sum(p * uv, axis=-1, keepdims=True)
  return uv * (rad + tan) + p * r2


def pixels_to_rays(x: np.ndarray, cam: Camera, iterations: int = 20) -> np.ndarray:
  """Pixels (..., 2) of `cam`'s image -> undistorted pinhole rays (..., 2) = (x/z, y/z), float64.

  The inverse of `project_camera` up to the depth: the lens distortion is undone by
  fixed-point iteration (converges to < 1e-9 in the image area of Human3.6M's lenses).
  Rays are what the trajectory model reads: pixels made camera-independent (no focal
  length, principal point or distortion left in them).
  """
  target = (np.asarray(x, np.float64) - cam.center) / cam.focal_length
  uv = target.copy()
  for _ in range(int(iterations)):
    uv = uv + (target - distort_rays(uv, cam.radial, cam.tangential))
  return uv


def project_camera(x: np.ndarray, cam: Camera) -> np.ndarray:
  """(..., 3) camera-frame metres -> (..., 2) pixels through `cam` (full distortion)."""
  return project(x, cam.focal_length, cam.center, cam.radial, cam.tangential)


def normalize_screen(x: np.ndarray, w: int, h: int) -> np.ndarray:
  """Pixels (..., 2) -> normalised screen coordinates: x / w * 2 - [1, h / w].

  x in [0, w] maps to [-1, 1], y in [0, h] to [-h/w, h/w]. Keeps the dtype
  of floating input.
  """
  x = np.asarray(x)
  dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
  return (x / w * 2 - np.array([1.0, h / w])).astype(dtype, copy=False)


def unnormalize_screen(x: np.ndarray, w: int, h: int) -> np.ndarray:
  """Normalised screen coordinates (..., 2) -> pixels. Inverse of `normalize_screen`."""
  x = np.asarray(x)
  dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
  return ((x + np.array([1.0, h / w])) * w / 2).astype(dtype, copy=False)
