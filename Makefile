# edgecam: `make demo` to see it work, `make test` to prove it does.
# Both install what is missing first: Python packages into .venv, Debian packages with
# apt-get (when run as root), and the viewer's mqtt.js from the npm registry.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# libavcodec59: Firefox ESR decodes WebRTC H.264 through the system's FFmpeg.
# cloud-init: `cloud-init schema` checks the user-data `edgecam provision` writes;
# systemd: `systemd-analyze verify` on the unit install.sh installs;
# nginx-light, caddy: the README's viewer-hosting snippets are run as written.
APT_PACKAGES := chromium mosquitto coturn firefox-esr libavcodec59 iproute2 util-linux faketime \
	cloud-init systemd nginx-light caddy
WEB_VENDOR := agent/web/vendor/mqtt.min.js
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help demo test lint typecheck unit deps system-deps python-deps web-deps clean

help:
	@echo "make demo    run broker + agent (test pattern) + browser viewer on 127.0.0.1"
	@echo "make test    install what is missing, then lint, type-check and run every test"
	@echo "make lint    ruff + mypy --strict only"
	@echo "make clean   remove .venv and caches"

deps: system-deps python-deps web-deps

system-deps:
	@bash tests/tools/system-deps.sh $(APT_PACKAGES)

python-deps: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (first run takes a minute)"
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

web-deps: $(WEB_VENDOR)

$(WEB_VENDOR): agent/web/package.json
	@command -v npm >/dev/null || { echo "npm missing: run as root so make can apt-get install npm, or install Node.js"; exit 1; }
	@echo "installing mqtt.js from the npm registry"
	@cd agent/web && npm install --no-audit --no-fund --silent
	@mkdir -p agent/web/vendor
	@cp agent/web/node_modules/mqtt/LICENSE.md agent/web/vendor/mqtt.LICENSE.md
	@cp agent/web/node_modules/mqtt/dist/mqtt.min.js $@

lint: python-deps
	$(VENV)/bin/ruff check agent hw tests
	$(VENV)/bin/mypy --strict agent hw

test: deps lint
	@bash tests/tools/isolated.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

demo: deps
	$(VENV)/bin/edgecam demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache agent/web/node_modules agent/web/vendor
