"""A TensorFlow Datasets builder for Human3.6M (manual download).

Human3.6M cannot be downloaded automatically (licence). Put the VideoPose3D
files (`data_3d_h36m.npz` and `data_2d_h36m_<source>.npz`, see
`poseformer_jax.data.h36m`) in a folder and pass it as `manual_dir`:

    import tensorflow_datasets as tfds
    from poseformer_jax.data import tfds_h36m  # registers 'human36m'
    builder = tfds.builder('human36m/cpn_ft_h36m_dbb', data_dir=DATA_DIR)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=NPZ_DIR))
    ds = builder.as_dataset(split='train')

One example per (subject, action, camera) sequence, with exactly the arrays of
`dataset.load_sequences` (normalised 2D, camera-frame root-relative 3D in
metres) plus the camera's calibration. Builder configs choose the 2D source
(`gt`, `cpn_ft_h36m_dbb`, `sh_pt_mpii`). Splits by subject: train S1, S5, S6,
S7, S8; test S9, S11 (as `load_sequences`, so S11 'Directions' is not in
test). A split whose subjects are all absent from the files (e.g. the
training-only mocap) is left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from poseformer_jax import config_lib
from poseformer_jax.data import cameras as cams
from poseformer_jax.data import h36m, skeleton

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
J = skeleton.NUM_JOINTS


@dataclasses.dataclass
class Human36mConfig(tfds.core.BuilderConfig):
  """Config per 2D source: reads `data_2d_h36m_<keypoints>.npz`."""
  keypoints: str = "gt"


def data_config(root, keypoints: str):
  """The `config.data` block `load_sequences` needs, for the builder's files."""
  cfg = config_lib.base_config().data
  cfg.root, cfg.keypoints = str(root), keypoints
  cfg.subjects_train, cfg.subjects_test = ",".join(TRAIN_SUBJECTS), ",".join(TEST_SUBJECTS)
  return cfg


class Human36m(tfds.core.GeneratorBasedBuilder):
  """Human3.6M 2D/3D pose sequences in the VideoPose3D format."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Place data_3d_h36m.npz and data_2d_h36m_<source>.npz (VideoPose3D format; "
      "`python -m poseformer_jax.data.prepare_h36m --root DIR` makes the 'gt' one) in manual_dir.")
  BUILDER_CONFIGS = [
      Human36mConfig(name="gt", keypoints="gt",
                     description="2D = 3D mocap projected through the cameras"),
      Human36mConfig(name="cpn_ft_h36m_dbb", keypoints="cpn_ft_h36m_dbb",
                     description="2D = CPN detections fine-tuned on Human3.6M"),
      Human36mConfig(name="sh_pt_mpii", keypoints="sh_pt_mpii",
                     description="2D = Stacked Hourglass detections (MPII-pretrained), mapped to "
                                 "the 17 Human3.6M joints"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    vec = lambda n, doc: tfds.features.Tensor(shape=(n,), dtype=np.float32, doc=doc)
    return self.dataset_info_from_configs(
        description=__doc__.split("\n")[0],
        features=tfds.features.FeaturesDict({
            "subject": tfds.features.Text(),
            "action": tfds.features.Text(),
            "camera": tfds.features.Scalar(dtype=np.int32, doc="camera index 0..3"),
            "keypoints_2d": tfds.features.Tensor(
                shape=(None, J, 2), dtype=np.float32, doc="normalised screen coordinates"),
            "positions_3d": tfds.features.Tensor(
                shape=(None, J, 3), dtype=np.float32,
                doc="camera frame, metres, root-relative (root joint = 0)"),
            "image_size": tfds.features.Tensor(shape=(2,), dtype=np.int32, doc="(w, h) pixels"),
            "camera_params": tfds.features.FeaturesDict({
                "focal_length": vec(2, "fx, fy pixels"),
                "center": vec(2, "cx, cy pixels"),
                "radial_distortion": vec(3, "k1, k2, k3"),
                "tangential_distortion": vec(2, "p1, p2"),
                "orientation": vec(4, "camera-to-world quaternion w, x, y, z"),
                "translation": vec(3, "camera centre, world metres"),
            }),
        }),
        homepage="http://vision.imar.ro/human3.6m/",
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    present = set(h36m.read_positions_3d(h36m.find_file(root, h36m.FILE_3D), check=False))
    splits = {}
    for split, subjects in (("train", TRAIN_SUBJECTS), ("test", TEST_SUBJECTS)):
      if present & set(subjects):
        splits[split] = self._generate_examples(root, split, [s for s in subjects if s in present])
    return splits

  def _generate_examples(self, root, split: str, subjects):
    cfg = data_config(root, self.builder_config.keypoints)
    setattr(cfg, f"subjects_{split}", ",".join(subjects))
    sequences, _ = h36m.load(cfg, split)
    for s in sequences:
      cam = cams.camera(s.subject, s.camera)
      f32 = lambda v: np.asarray(v, np.float32)
      yield f"{s.subject}/{s.action}/{s.camera}", {
          "subject": s.subject, "action": s.action, "camera": s.camera,
          "keypoints_2d": s.keypoints_2d, "positions_3d": s.positions_3d,
          "image_size": np.asarray(s.image_size, np.int32),
          "camera_params": {
              "focal_length": f32(cam.focal_length), "center": f32(cam.center),
              "radial_distortion": f32(cam.radial), "tangential_distortion": f32(cam.tangential),
              "orientation": f32(cam.orientation), "translation": f32(cam.translation),
          },
      }
