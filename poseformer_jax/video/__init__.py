"""In-the-wild video: detection, keypoint files, 3D poses, renders and exports.

* `detect`   — the `Detector` interface, MediaPipe Pose offline (`MediaPipeDetector`),
  replayed keypoint files, video and camera frames (`detect_video`).
* `formats`  — keypoint files (COCO-17, MediaPipe 33, OpenPose BODY_25, H36M-17)
  -> H36M-17 pixels with NaN for missing joints (`load_keypoints`, `to_h36m`);
  the project's keypoint npz (`save_keypoints`).
* `tracks`   — several people: per-person records with track ids, outputs per track.
* `gaps`     — interpolation of missing joints along time (`fill_gaps`).
* `render`   — side-by-side mp4/gif and a PNG contact sheet (`render_video`,
  `contact_sheet`; needs matplotlib, imageio, imageio-ffmpeg).
* `export`   — npz, JSON and BVH (`save_npz`, `save_json`, `write_bvh`,
  `read_bvh_positions`).
* `pipeline`, `online` — the stages of ``poseformer-jax lift`` (offline, tracks,
  ``--stream``/``--webcam``); `detect_cli` is ``poseformer-jax detect``.

The lifting itself is `poseformer_jax.lift` (function, `Lifter`, command) and
`poseformer_jax.stream` (online). Submodules are imported on use, so importing
this package is cheap.
"""
