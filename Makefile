# The two commands of the README, plus the UI, the sandbox and the definitions
# check. Each target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: run test check-defs dev sandbox screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

## run: materialize every example campaign (embedded default: SQLite, local backends)
run: $(STAMP)
	$(BIN)/campaign-assets launch

## test: the whole suite (Postgres-backed tests use 127.0.0.1:5432), three test
## files at a time (most tests wait on daemons and vendors, not on the CPU; a
## file's module fixtures stay in one worker), slowest tests listed at the end
test: $(STAMP)
	$(BIN)/pytest -n 3 --dist loadfile --durations=15

## check-defs: `dg check defs`, failing on any warning about our code (.ci/check-defs)
check-defs: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	bash .ci/check-defs

## dev: the Dagster UI and daemon on http://127.0.0.1:3000
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/campaign-assets pools
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## sandbox: the vendor sandbox in the foreground (prints the variables to export)
sandbox: $(STAMP)
	$(BIN)/campaign-assets sandbox --scale 0.1

## screenshots: the README's screenshots (docs/*.png: the landing page, the approval path in the UI), in headless Chromium
screenshots: $(STAMP)
	$(BIN)/python -m campaign_assets_tests.screenshots
	$(BIN)/python -m campaign_assets_tests.ui_screenshots

clean:
	rm -rf workspace .dagster
