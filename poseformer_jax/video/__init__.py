"""In-the-wild video: detection, keypoint files, renders and exports.

* `detect`   — the `Detector` interface, MediaPipe Pose offline (`MediaPipeDetector`),
  replayed keypoint files, video and camera frames (`detect_video`).
* `formats`  — keypoint files (COCO-17, MediaPipe 33, OpenPose BODY_25, H36M-17)
  -> H36M-17 pixels with NaN for missing joints (`load_keypoints`, `to_h36m`);
  the project's keypoint npz (`save_keypoints`).
* `tracks`   — several people: per-person records with track ids, outputs per track.
* `render`   — side-by-side mp4/gif and a PNG contact sheet (`render_video`,
  `contact_sheet`; needs matplotlib, imageio, imageio-ffmpeg).
* `export`   — npz and JSON of one person's result (`save_npz`, `save_json`).
* `bvh`      — BVH skeleton animation (`write_bvh`, `read_bvh_positions`).

`detect_cli` is ``poseformer-jax detect``. ``poseformer-jax lift`` stands on these
blocks from above (`poseformer_jax.lift_command`), as does the viewer
(`poseformer_jax.view`); nothing here imports either.

The lifting itself is the library below this package: `poseformer_jax.lifter`
(`lift`, `Lifter`), `poseformer_jax.stream` (`StreamingLifter`) and
`poseformer_jax.gaps` (missing joints). Submodules are imported on use, so
importing this package is cheap.
"""
