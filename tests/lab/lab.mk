# Lab cluster targets (tests/lab/README.md). Included by the root Makefile, which defines PY.
# Binaries and runtime state live under $${MESHGUARD_CACHE:-$$HOME/.cache/meshguard-egress}/lab.
LAB_SH := tests/lab/scripts/lab.sh
LAB_BUILD := tests/lab/scripts/build.sh

.PHONY: lab-build lab-gen lab-up lab-down lab-status lab-test

lab-build: ## build (or reuse from the cache) kube-*, kubectl, etcd, kwok(ctl), istioctl, istiod
	@command -v go >/dev/null || { echo "lab-build: go not found (the lab is built from Go modules)" >&2; exit 1; }
	@$(LAB_BUILD)

lab-gen: ## regenerate tests/lab/go/*/go.mod,go.sum from tests/versions.env (after changing a pin)
	tests/lab/scripts/gen-modules.sh

lab-up: lab-build ## start the lab cluster (reused when already up); prints its KUBECONFIG
	@$(LAB_SH) up
	@echo "export KUBECONFIG=$$($(LAB_SH) kubeconfig)"

lab-down: ## stop the lab cluster and remove its runtime state
	@$(LAB_SH) down

lab-status: ## kubeconfig path, health, nodes, processes and memory of the lab
	@$(LAB_SH) status

# The pytest session fixture (tests/lab/conftest.py) owns the lab's lifecycle: it reuses a
# running lab, or starts one and stops it again at the end of the session.
lab-test: ## the lab tier: build if needed, then pytest -m lab (starts/stops the lab itself)
	@if ! command -v go >/dev/null; then \
	  if [ "$${MESHGUARD_REQUIRE_LAB:-}" = 1 ]; then \
	    echo "lab tier FAILED: go not found and MESHGUARD_REQUIRE_LAB=1" >&2; exit 1; fi; \
	  echo "lab tier SKIPPED: go not found (install Go to run it; CI sets MESHGUARD_REQUIRE_LAB=1)"; \
	else \
	  $(LAB_BUILD) && MESHGUARD_REQUIRE_LAB=1 $(PY) -m pytest -m lab tests/lab; \
	fi
