# Two commands on a fresh machine: `make run` (install + start) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./shopwatch-data
PROJECT ?= My shop
ADMIN ?= admin@example.com

VENDOR := shopwatch/web/static/vendor

.PHONY: run serve test test-fast lint bench-ingest bench-overview bench-backfill bench-queries bench-alerts bench-rum bench-otlp bench-security bench-ltv bench-business bench-checks bench-browser install install-test assets browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python assets
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python assets browser
	$(BIN)/pip install --quiet -e '.[test]'

# The dashboard's browser libraries come from the npm registry (pinned in
# package-lock.json) and are served by Shopwatch itself: no CDN, nothing minified in git.
assets: $(VENDOR)/.installed

$(VENDOR)/.installed: package.json package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
	   node_modules/htmx.org/dist/htmx.min.js \
	   node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/echarts/dist/echarts.min.js \
	   $(VENDOR)/
	cp node_modules/uplot/LICENSE $(VENDOR)/LICENSE.uplot
	cp node_modules/htmx.org/LICENSE $(VENDOR)/LICENSE.htmx
	cp node_modules/swagger-ui-dist/LICENSE $(VENDOR)/LICENSE.swagger-ui
	cp node_modules/echarts/LICENSE $(VENDOR)/LICENSE.echarts
	touch $@

# Browser tests drive the system's Chromium (Debian package); nothing downloads a browser.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The demo: Shopwatch, a demo shop, shoppers and incidents, four weeks of history.
run: install
	$(BIN)/shopwatch demo --speed 10 --backfill 28

# Shopwatch alone, for your own shop.
serve: install
	$(BIN)/shopwatch project create "$(PROJECT)" --exist-ok --data $(DATA)
	$(BIN)/shopwatch user add $(ADMIN) --role admin --generate-password --exist-ok --data $(DATA)
	$(BIN)/shopwatch serve --data $(DATA)

lint: install-test
	$(BIN)/ruff check shopwatch tests benchmarks
	$(BIN)/mypy

test: install-test lint
	$(BIN)/pytest

test-fast: install-test
	$(BIN)/pytest -m 'not slow and not browser'

bench-ingest: install
	$(BIN)/python benchmarks/ingest.py

bench-overview: install
	$(BIN)/python benchmarks/overview.py

bench-backfill: install
	$(BIN)/python benchmarks/backfill.py

bench-queries: install
	$(BIN)/python benchmarks/queries.py

bench-alerts: install
	$(BIN)/python benchmarks/alerts.py

bench-security: install
	$(BIN)/python benchmarks/security.py

bench-ltv: install-test
	$(BIN)/python benchmarks/ltv.py

bench-business: install
	$(BIN)/python benchmarks/business.py

bench-rum: install
	$(BIN)/python benchmarks/rum.py

bench-otlp: install
	$(BIN)/python benchmarks/otlp.py

# The baseline, Prometheus's blackbox exporter, comes from the Debian archive.
bench-checks: install
	@command -v prometheus-blackbox-exporter >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus-blackbox-exporter)
	$(BIN)/python benchmarks/checks.py

bench-browser: install
	$(BIN)/python benchmarks/browser_flow.py

clean:
	rm -rf $(VENV) build *.egg-info node_modules $(VENDOR)
