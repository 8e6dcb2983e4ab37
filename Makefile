# Every target builds what it needs: a fresh clone runs `make run` or `make test` as is.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: system-packages run test lint fuzz bench loadtest migrate check-config vendor-graphiql clean

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## system-packages: the Debian packages the suite needs (installed as root), servers started
system-packages:
	.ci/system-packages

## run: start the service on its embedded default (SQLite, no servers needed)
run: $(STAMP)
	$(BIN)/authsvc serve

## test: the whole suite against MariaDB and Redis (TEST_DATABASE_URL, TEST_REDIS_URL)
test: system-packages $(STAMP)
	$(BIN)/python -m pytest -p no:locust $(PYTEST_ARGS)

## fuzz: the fuzz suites at length (make test runs them briefly); FUZZ_EXAMPLES to tune
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-3000} $(BIN)/python -m pytest -p no:locust tests/fuzz

## lint: ruff and mypy (strict on the package)
lint: $(STAMP)
	$(BIN)/ruff check authsvc tests schema loadtests setup.py
	$(BIN)/ruff format --check authsvc tests schema loadtests setup.py
	$(BIN)/mypy

## bench: throughput and latency under loopback load (needs wrk, MariaDB, Redis; minutes)
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python loadtests/bench.py $(BENCH_ARGS)

## loadtest: Locust against a running server (LOADTEST_HOST), headless, bounded in time
LOADTEST_HOST ?= http://127.0.0.1:3000
LOADTEST_USERS ?= 20
LOADTEST_TIME ?= 60s
loadtest: $(STAMP)
	$(BIN)/python -m locust -f loadtests/locustfile.py --headless --only-summary \
		-u $(LOADTEST_USERS) -r $(LOADTEST_USERS) -t $(LOADTEST_TIME) --host $(LOADTEST_HOST)

## vendor-graphiql: refresh the GraphiQL files the package ships (from the npm registry)
GRAPHIQL_VERSION ?= 3.9.0
REACT_VERSION ?= 18.3.1
VENDOR := authsvc/graphql/static/vendor
vendor-graphiql:
	rm -rf build/graphiql && mkdir -p build/graphiql $(VENDOR)
	cd build/graphiql && npm pack --silent graphiql@$(GRAPHIQL_VERSION) \
		react@$(REACT_VERSION) react-dom@$(REACT_VERSION) >/dev/null
	cd build/graphiql && for f in *.tgz; do mkdir -p "$${f%.tgz}" && tar xzf "$$f" -C "$${f%.tgz}"; done
	sed '/sourceMappingURL/d' build/graphiql/graphiql-$(GRAPHIQL_VERSION)/package/graphiql.min.js \
		> $(VENDOR)/graphiql.min.js
	cp build/graphiql/graphiql-$(GRAPHIQL_VERSION)/package/graphiql.min.css $(VENDOR)/
	cp build/graphiql/react-$(REACT_VERSION)/package/umd/react.production.min.js $(VENDOR)/
	cp build/graphiql/react-dom-$(REACT_VERSION)/package/umd/react-dom.production.min.js $(VENDOR)/
	cp build/graphiql/graphiql-$(GRAPHIQL_VERSION)/package/LICENSE $(VENDOR)/LICENSE.graphiql
	cp build/graphiql/react-$(REACT_VERSION)/package/LICENSE $(VENDOR)/LICENSE.react

migrate: $(STAMP)
	$(BIN)/authsvc migrate

check-config: $(STAMP)
	$(BIN)/authsvc check-config

clean:
	rm -rf $(VENV) build dist *.egg-info .authsvc .pytest_cache .mypy_cache .ruff_cache
