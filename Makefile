# The two set-up commands of the README. Both are safe to re-run.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# PyTorch is only for the parity tests. Pin the CPU build so the test set-up never pulls a
# multi-GB CUDA build; point TORCH_PIP_ARGS at a CPU wheel index on machines that need it.
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install install-test

install:
	$(PIP) install -q -e '.[data,tensorboard,video]'

install-test:
	$(PIP) install -q torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PIP) install -q -e '.[test]'

# Main job on the embedded default: synthetic Human3.6M-format data, a small model, a few
# minutes of CPU training, then the standard evaluation table.
demo: install
	$(PYTHON) train.py --config=configs/default.py --workdir=runs/demo
	$(PYTHON) eval.py --config=configs/default.py --checkpoint=runs/demo

test: install-test
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)
