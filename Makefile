# meshguard.egress developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Python tooling (ansible, ansible-lint, pytest, ...) lives in a cached virtualenv built
# from tests/requirements.txt; tests/tools/venv.sh creates it on first use.
VENV := $(shell tests/tools/venv.sh)
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)

# ansible finds this checkout as the collection meshguard.egress through a symlink tree.
COLLECTIONS := $(CURDIR)/build/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/meshguard/egress
# Playbooks here run against the implicit localhost; don't warn about the missing inventory.
export ANSIBLE_LOCALHOST_WARNING := False
export ANSIBLE_INVENTORY_UNPARSED_WARNING := False

POLICY ?= examples/baidu.yml
OUT ?= out/$(basename $(notdir $(POLICY)))

.PHONY: help collection render test test-unit test-schema sanity lint bench-render

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

collection: $(COLLECTION_LINK) ## make this checkout importable as meshguard.egress

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

render: collection ## main job: render POLICY (default: the seed example) to OUT, print the summary
	ansible-playbook meshguard.egress.render -e @$(POLICY) -e meshguard_egress_render_dir=$(abspath $(OUT))

test: collection test-unit test-oldest-client test-schema sanity lint molecule lab-test molecule-lab ## run every test tier (CI runs this)

# The property tests (hypothesis) run quick by default, each one's full number of examples under
# the long profile (tests/unit/property_runs.py): `make test` (CI) runs them long.
test: export MESHGUARD_HYPOTHESIS_PROFILE = long

test-unit: collection ## unit tests: model, validation, builder, module, golden, property tests (quick; long: MESHGUARD_HYPOTHESIS_PROFILE=long)
	$(PY) -m pytest -q tests/unit

# The oldest kubernetes client we claim (the floor of requirements.txt) in a small venv of its own
# (tests/requirements-oldest.txt, `tests/tools/venv.sh oldest`): the client's unit tests here; the
# lab tier runs site and verify with it too (tests/lab/test_oldest_client.py).
.PHONY: test-oldest-client
test-oldest-client: collection ## the client's unit tests on the oldest kubernetes client we claim
	"$$(tests/tools/venv.sh oldest)/bin/python" -m pytest -q tests/unit/plugins/module_utils/test_k8s_client.py

test-schema: collection ## every example's objects against Istio's own CRD schemas (needs go)
	@if ! command -v go >/dev/null; then \
	  if [ "$${MESHGUARD_REQUIRE_LAB:-}" = 1 ]; then \
	    echo "schema tier FAILED: go not found and MESHGUARD_REQUIRE_LAB=1" >&2; exit 1; fi; \
	  echo "schema tier SKIPPED: go not found (the Istio CRDs come from the istio.io/istio Go module)"; \
	else $(PY) -m pytest -q tests/schema; fi

sanity: ## ansible-test sanity, units and integration on a copy under ansible_collections/meshguard/egress
	tests/tools/ansible-test.sh

lint: collection ## ansible-lint (production profile), yamllint, changelog fragments
	tests/tools/lint.sh
	antsibull-changelog lint

.PHONY: molecule
molecule: collection ## Molecule scenarios of the roles (extensions/molecule), on localhost (all but lab)
	molecule test --all --exclude lab

.PHONY: molecule-lab
molecule-lab: collection ## Molecule scenario lab: the apply roles from a consumer playbook on the lab cluster
	tests/tools/molecule-lab.sh

.PHONY: bench-apply
bench-apply: collection ## converge 50 rules on the lab: site vs kubectl apply --server-side vs one k8s task per object
	$(PY) tests/bench/bench_apply.py

bench-render: collection ## time rendering 10 vs 1,000 rules through the module
	$(PY) tests/bench/bench_render.py

.PHONY: bench-verify
bench-verify: collection ## time 20 probes on the lab: access_probe vs a serial loop of kubernetes.core.k8s_exec (needs make lab-up)
	$(PY) tests/bench/bench_verify.py

include tests/lab/lab.mk
