# Set-up and everyday commands. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install dev bench corpus clips models clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev chromium

# The browser tests (the report, the explore page) run in headless Chromium (Debian's chromium
# package). CI (root on Debian) installs it here; elsewhere, without root or apt-get, they are
# skipped with a note.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: chromium is not installed; the browser tests will be skipped (apt-get install chromium)"

demo: install
	$(BIN)/nmfsep split sample_audio/tones_mix.wav -k 2 -o separated --force
	$(BIN)/nmfsep eval --ref sample_audio/tones_src1.wav --ref sample_audio/tones_src2.wav \
		separated/tones_mix/source1.wav separated/tones_mix/source2.wav
	@echo "Listen: separated/tones_mix/source1.wav and source2.wav (the mixture: sample_audio/tones_mix.wav)"

test: dev
	$(BIN)/python -m pytest -q

bench: dev
	$(BIN)/python benchmarks/bench_nmf.py

# The separation benchmark's corpus (a few minutes; needs espeak-ng, flite, fluidsynth and Debian's
# klettres-data, supertux-data and soundfont packages). Not part of `make test` or CI.
corpus: dev
	$(BIN)/python benchmarks/make_corpus.py --out benchmarks/corpus

# Clean clips of every material of the corpus' splits (not the mixtures' audio), for learning models
# of a material: benchmarks/corpus/clips/<split>/<material>/NN.wav and clips.json. Same packages.
clips: dev
	$(BIN)/python benchmarks/make_corpus.py --clips --out benchmarks/corpus

# The built-in models (src/nmfsep/models: models, cards, pair trainings) from the train split's clips,
# byte for byte as shipped (after `make clips`; about 30 minutes on 2 cores). Not part of `make test` or CI.
models: dev
	$(BIN)/python benchmarks/build_models.py --clips benchmarks/corpus/clips/clips.json

clean:
	rm -rf $(VENV) separated .pytest_cache
