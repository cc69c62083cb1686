# Every target creates .venv in the repo root when it is missing and installs the package into it.
# --no-cache-dir: pip would otherwise keep copies of the wheels it fetched (GBs with torch and its CUDA libraries).
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIMCLR := $(VENV)/bin/simclr
STAMP  := $(VENV)/.installed-stamp
DEMO_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test test-fast bench lint docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir -e '.[all,dev]'
	@touch $(STAMP)

install: $(STAMP)

# Pretrain on the procedural Spirograph set (nothing to download), then evaluate it (factor regression,
# plots, report.html); a few minutes on a 2-core CPU. Prints the report's path and the headline numbers.
demo: install
	$(SIMCLR) pretrain --dataset spirograph --train-size 3072 --test-size 1024 --batch-size 128 \
		--epochs 3 --out $(DEMO_DIR)
	$(SIMCLR) evaluate $(DEMO_DIR)

# One pytest worker per core (at most 4); each test module runs whole on one worker (its fixtures are set up once),
# the modules with the most end-to-end runs (marked slow) first.
test: install
	$(PY) -m pytest -q -n auto --dist loadscope --durations=25

# Everything but the end-to-end runs: a minute or two, for quick iteration.
test-fast: install
	$(PY) -m pytest -q -n auto -m "not slow"

bench: install
	$(PY) benchmarks/throughput.py --record BENCHMARKS.md
	$(PY) benchmarks/gradient_penalty_step.py
	$(PY) benchmarks/streaming.py --record BENCHMARKS.md

# docs/CLI.md and docs/DATASETS.md from the code (tests/test_generated_docs.py fails when they are stale)
docs: install
	$(PY) tools/gen_docs.py

lint: install
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/mypy src

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
