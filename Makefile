# The two commands the README promises on a fresh Debian/Ubuntu machine:
#   make serve   install what is missing, then start the server (default engine)
#   make test    install what is missing, then lint, type-check and run every test
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test setup setup-test lint bench bench-piper bench-protocols bench-cache load clean

serve: setup
	$(VENV)/bin/tts-trio serve --host $(HOST) --port $(PORT)

test: setup-test lint
	$(VENV)/bin/python -m pytest

lint: setup-test
	$(VENV)/bin/ruff check tts_trio tests bench scripts
	$(VENV)/bin/ruff format --check tts_trio tests bench scripts
	$(VENV)/bin/mypy

bench: setup-test
	$(VENV)/bin/python bench/bench.py

# The peers run from a virtualenv of their own (never the project's): wyoming-piper and Piper's HTTP server.
PEERS_VENV ?= .venv-peers
PEER_PACKAGES = wyoming-piper==2.5.2 wyoming==1.10.2 "piper-tts[http]==1.8.0"

bench-piper: setup-test $(PEERS_VENV)/bin/wyoming-piper
	$(VENV)/bin/python bench/piper_bench.py --peers --peer-venv $(PEERS_VENV)

$(PEERS_VENV)/bin/wyoming-piper:
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet $(PEER_PACKAGES)

bench-protocols: setup-test
	$(VENV)/bin/python bench/protocols_bench.py

bench-cache: setup-test
	$(VENV)/bin/python bench/cache_bench.py

load: setup-test
	$(VENV)/bin/python bench/load.py

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
