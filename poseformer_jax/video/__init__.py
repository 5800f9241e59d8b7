"""In-the-wild video: detection, keypoint files, renders and exports.

* `ffmpeg`   — video frames in and out (`video_info`, `iter_frames`, `open_writer`).
* `detect`   — the `Detector` interface, MediaPipe Pose offline for one person
  (`MediaPipeDetector`), replayed keypoint files, camera frames (`detect_video`).
* `people`   — every person in a video, followed from frame to frame (`detect_people`),
  with the geometry of `tracking` (boxes, crop windows, who is who).
* `formats`  — keypoint files (COCO-17, MediaPipe 33, OpenPose BODY_25, H36M-17)
  -> H36M-17 pixels with NaN for missing joints (`load_keypoints`, `to_h36m`);
  the project's keypoint npz (`save_keypoints`).
* `tracks`   — several people in files: per-person records with track ids
  (`read_tracks`, `save_records`), results keyed by track (`save_npz`, `save_json`).
* `figure`, `render` — one side-by-side frame (`PoseRenderer`); mp4/gif and a PNG
  contact sheet of one person or several (`render_people`, `people_contact_sheet`;
  needs matplotlib, imageio, imageio-ffmpeg).
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
