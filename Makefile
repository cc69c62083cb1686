# Every target creates .venv in the repo root when it is missing and installs the package into it, with the
# extras in EXTRAS: developers get everything (all,dev: the tests need both); `make install EXTRAS=` is the core
# install alone, what `pip install simclr-kit` gives (in a fresh VENV=...: pip adds packages, it removes none).
# Each EXTRAS has its own stamp, so changing it installs again.
# --no-cache-dir: pip would otherwise keep copies of the wheels it fetched (GBs with torch and its CUDA libraries).
VENV   ?= .venv
EXTRAS ?= all,dev
PY     := $(VENV)/bin/python
SIMCLR := $(VENV)/bin/simclr
comma  := ,
STAMP  := $(VENV)/.installed-$(or $(subst $(comma),+,$(EXTRAS)),core)
DEMO_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test test-fast test-install bench lint docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	@touch $(STAMP)

install: $(STAMP)

# Pretrain on the procedural Spirograph set (nothing to download), then evaluate it (factor regression,
# plots, report.html); a few minutes on a 2-core CPU. Prints the report's path and the headline numbers.
demo: install
	$(SIMCLR) pretrain --dataset spirograph --train-size 3072 --test-size 1024 --batch-size 128 \
		--epochs 3 --out $(DEMO_DIR)
	$(SIMCLR) evaluate $(DEMO_DIR)

# One pytest worker per core (at most 4); each test module runs whole on one worker (its fixtures are set up once),
# the modules with the most end-to-end runs (marked slow) first. The install check is its own target (below).
test: install
	$(PY) -m pytest -q -n auto --dist loadscope --durations=25 -m "not install"

# Everything but the end-to-end runs: a minute or two, for quick iteration.
test-fast: install
	$(PY) -m pytest -q -n auto -m "not slow and not install"

# The wheel installed WITHOUT extras into a fresh venv, then a toy Spirograph pretrain + evaluate with it
# (tools/check_install.py; tests/test_install.py runs it under pytest -m install). torch and its CUDA libraries
# are linked in from $(VENV), so pip fetches only simclr's other dependencies: 2 minutes measured on a shared 2-core
# CPU (6 while the test suite ran beside it), most of it pip;
# `$(PY) tools/check_install.py --full` installs torch too (5.5 GB, minutes more).
test-install: install
	$(PY) tools/check_install.py

# The side-by-side measurements BENCHMARKS.md records. time_to_accuracy.py trains simclr and lightly for the same
# time (2 min a row here, 10 by default); its first run installs lightly with torch into
# ~/.cache/simclr-bench/lightly-venv (5 GB, minutes), later runs reuse it.
bench: install
	$(PY) benchmarks/throughput.py --record BENCHMARKS.md
	$(PY) benchmarks/gradient_penalty_step.py
	$(PY) benchmarks/streaming.py --record BENCHMARKS.md
	$(PY) benchmarks/micro_batch.py --record BENCHMARKS.md
	$(PY) benchmarks/multicrop.py --record BENCHMARKS.md
	$(PY) benchmarks/negatives.py --record BENCHMARKS.md
	$(PY) benchmarks/time_to_accuracy.py --budget 2m --record BENCHMARKS.md

# docs/CLI.md and docs/DATASETS.md from the code (tests/test_generated_docs.py fails when they are stale)
docs: install
	$(PY) tools/gen_docs.py

lint: install
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/mypy src

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
