# One command to see it work (make demo), one to prove it (make test).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test test-store-sqlite test-store-postgresql lint typecheck unit bench bench-peers system-deps check-install screenshots fuzz clean

$(BIN)/.installed: pyproject.toml
	./scripts/ensure-python-venv.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

## Run the whole product on embedded defaults: amqtt broker, SQLite, InfluxDB 1.x, a simulated care home
## with 7 days of history, dashboard on :8080, the responders' phones on :8090/phone (docs/demo.md).
## InfluxDB is installed first when missing; if that fails, the demo runs without telemetry.
demo: $(BIN)/.installed
	@[ -x /usr/bin/influxd ] || ./scripts/install-system-deps.sh influxdb || echo "InfluxDB could not be installed: the demo runs without telemetry"
	$(BIN)/careline demo

system-deps:
	./scripts/install-system-deps.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## Install what the tests need (pip; apt: mosquitto, influxdb, victoria-metrics, chromium, postgresql), lint,
## type-check, then the suite on each incident-store backend (TEST_STORES): SQLite files and PostgreSQL
## (CARELINE_TEST_STORE; one server per pytest worker, a fresh database per test). The runs go one after the
## other (both run even when the first fails), each with TEST_WORKERS pytest-xdist workers, one test file
## per worker at a time: most tests wait on real services, a browser or a broker, so two files share two
## cores well. Side by side (STORE_JOBS=2) is faster, but four files at once on two cores made the suite's
## timing tests fail (docs/benchmarks.md). TEST_WORKERS=0 runs each run's tests one after another,
## TEST_STORES=sqlite only one backend.
TEST_WORKERS ?= 2
TEST_STORES ?= sqlite postgresql
STORE_JOBS ?= 1
PYTEST_ARGS ?=
test: $(BIN)/.installed system-deps lint typecheck
	$(MAKE) --no-print-directory -k -j$(STORE_JOBS) --output-sync=target $(addprefix test-store-,$(TEST_STORES))

STORE_RUNS = test-store-sqlite test-store-postgresql
$(STORE_RUNS): test-store-%: $(BIN)/.installed
	@echo "=== the suite on $*"
	CARELINE_TEST_STORE=$* $(BIN)/pytest -q --durations=25 \
		$(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

## `pip install .` (no extras) into a fresh virtualenv must give a working `careline` (CI runs this first).
check-install:
	./scripts/check-install.sh $(PYTHON)

## Alarm latency benchmark: SOS publish -> committed incident -> WebSocket frame (writes docs/benchmarks.md).
bench: $(BIN)/.installed system-deps
	$(BIN)/python benchmarks/alarm_latency.py

## Side by side (issue 12): a bare paho subscriber, Node-RED 4 (npm, into var/peers/node-red) and Careline on
## one Zigbee2MQTT stream at 5k-20k msg/s, 2 repeats (~15 min; writes docs/benchmarks.md, its plots and
## benchmarks/results/peers.json). PEERS_ARGS="--rates 5000 --duration 5 --repeats 1 --no-write" is the quick look.
PEERS_ARGS ?=
$(BIN)/.bench-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench-peers: $(BIN)/.bench-installed
	./scripts/install-system-deps.sh mosquitto influxdb
	$(BIN)/python benchmarks/peers/run.py $(PEERS_ARGS)

## docs/screenshots/: the main screens in English and Chinese, from a live demo (installs fonts-noto-cjk).
screenshots: $(BIN)/.installed system-deps
	$(BIN)/python scripts/screenshots.py

FUZZ_SECONDS ?= 600
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix=var/fuzz/

## Coverage-guided fuzzing (atheris) of the device decoders, then of the directory and configuration readers,
## FUZZ_SECONDS each (default 600). The corpus grows in var/fuzz/<target>/; crashes land in var/fuzz/crash-*
## (docs/hostile-input.md). `make test` runs the same targets for 20 s each (tests/test_fuzz.py).
fuzz: $(BIN)/.installed
	mkdir -p var/fuzz/decoders var/fuzz/files
	$(BIN)/python tests/fuzz/fuzz_decoders.py $(FUZZ_FLAGS) -dict=tests/fuzz/json.dict var/fuzz/decoders tests/fuzz/corpus/decoders
	$(BIN)/python tests/fuzz/fuzz_files.py $(FUZZ_FLAGS) var/fuzz/files tests/fuzz/corpus/files

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
