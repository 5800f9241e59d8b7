# The two set-up commands of the README. Both are safe to re-run.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# PyTorch is only for the parity tests. Pin the CPU build so the test set-up never pulls a
# multi-GB CUDA build; point TORCH_PIP_ARGS at a CPU wheel index on machines that need it.
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo demo-train test install install-test install-detect

install:
	$(PIP) install -q -e '.[data,tensorboard,video]'

install-test:
	$(PIP) install -q torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PIP) install -q -e '.[test,detect,export]'
	$(PIP) install -q --no-deps mediapipe==0.10.21

# Main job on the embedded default: the bundled MediaPipe keypoints of a real clip (a figure
# skater, examples/) lifted by the model shipped in the package, a rendered 3D animation and
# a contact sheet (drawn over the video when ../shared/data has it, else on a blank canvas),
# the interactive 3D viewer (one HTML file: open it in a browser) and npz/JSON/BVH in
# runs/demo/, then the run's summary. Nothing is downloaded.
DEMO_CHECKPOINT ?= pretrained:h36m-81_1_3-5subj
DEMO_VIDEO := $(wildcard ../shared/data/video/skater.mp4)
demo: install
	mkdir -p runs/demo
	$(PYTHON) -m poseformer_jax lift examples/skater_mediapipe33.npz \
	    --checkpoint=$(DEMO_CHECKPOINT) $(if $(DEMO_VIDEO),--video=$(DEMO_VIDEO)) \
	    --output=runs/demo/skater_3d.npz --json=runs/demo/skater_3d.json \
	    --bvh=runs/demo/skater_3d.bvh --render=runs/demo/skater_3d.mp4 \
	    --contact-sheet=runs/demo/skater_3d.png --html=runs/demo/skater_3d.html --overwrite

# Training on the embedded synthetic Human3.6M-format data: a small model, a few minutes of
# CPU training, then the standard evaluation table.
demo-train: install
	$(PYTHON) train.py --config=configs/default.py --workdir=runs/demo-train
	$(PYTHON) eval.py --config=configs/default.py --checkpoint=runs/demo-train

# The built-in detector (poseformer-jax lift VIDEO): MediaPipe 0.10.21 bundles its pose model
# but declares numpy<2 / protobuf<5, so it goes in without its declared dependencies (the
# `detect` extra brings the ones it really uses; see pyproject.toml).
install-detect: install
	$(PIP) install -q -e '.[detect]'
	$(PIP) install -q --no-deps mediapipe==0.10.21

test: install-test
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)
