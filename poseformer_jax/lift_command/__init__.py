"""``poseformer-jax lift``: the command that turns a video (or 2D keypoint files) into 3D poses,
renders and exports. `main` is the command line; `inputs`, `pipeline`, `online` and `summary`
are its stages. It stands on top: nothing else in the package imports it.
"""
