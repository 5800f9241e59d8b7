"""In-the-wild video: detector keypoints in, 3D poses, renders and exports out.

* `formats`  — keypoint files (COCO-17, MediaPipe 33, OpenPose BODY_25, H36M-17)
  -> H36M-17 pixels with NaN for missing joints (`load_keypoints`).
* `gaps`     — interpolation of missing joints along time (`fill_gaps`).
* `render`   — side-by-side mp4/gif and a PNG contact sheet (`render_video`,
  `contact_sheet`; needs matplotlib, imageio, imageio-ffmpeg).
* `export`   — npz, JSON and BVH (`save_npz`, `save_json`, `write_bvh`,
  `read_bvh_positions`).

The lifting itself is `poseformer_jax.lift` (function and CLI). Submodules are
imported on use, so importing this package is cheap.
"""
