# Two commands do all set-up on a fresh machine:
#   make book   -> build the whole book on the embedded default (bundled human DNA, models pre-trained here)
#   make test   -> run the test suite (this is what .ci/run runs)
# Both create a project-local virtual environment (.venv) with pinned dependencies and the Jupyter kernel
# registered inside it, once; later runs reuse it (the stamp is rebuilt only when the pins change).

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.dnalm-installed
PROFILE ?= default
PYTEST_ARGS ?=

.PHONY: book test smoke bench env data-verify data-rebuild lock clean browser check-book student

book: $(STAMP)
	$(BIN)/dnalm-book run --profile $(PROFILE)

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser test drives Debian's Chromium through chromedriver: install both once if missing (apt-get as
# root); where that is impossible the test is skipped and says why.
browser:
	@if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver for the browser test (apt-get) ..."; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	      echo "could not install chromium; the browser test will be skipped"; \
	  else echo "chromium/chromedriver missing and apt-get unavailable: the browser test will be skipped"; fi; \
	fi

# Open every page of the built book in headless Chromium (errors, images, links, search, screenshot).
check-book: $(STAMP) browser
	$(BIN)/dnalm-book check

# The student edition: solutions replaced by stubs (_build/student_html, _build/student_notebooks).
student: $(STAMP)
	$(BIN)/dnalm-book student

smoke: $(STAMP)
	$(BIN)/dnalm-book run --profile smoke

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tokenization.py
	$(BIN)/python benchmarks/bench_window_sampling.py
	$(BIN)/python benchmarks/bench_pretraining.py
	$(BIN)/python benchmarks/bench_masking.py
	$(BIN)/python benchmarks/bench_embeddings.py
	$(BIN)/python benchmarks/bench_dependency_maps.py
	$(BIN)/python benchmarks/bench_finetuning.py

env: $(STAMP)

data-verify: $(STAMP)
	$(BIN)/dnalm-book data verify

data-rebuild: $(STAMP)
	$(BIN)/dnalm-book data rebuild

# Re-pin every transitive dependency after changing pyproject.toml (needs PyPI).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' > constraints.txt

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dnalm-book)" >/dev/null
	@touch $(STAMP)
	@echo "environment ready in $(VENV)"

clean:
	rm -rf _build book/_generated runs .pytest_cache
