# Placeholder: the lab harness replaces this file with lab-build/lab-up/lab-down/lab-status/lab-test.
.PHONY: lab-test
lab-test:
	@echo "lab tier not built yet" >&2; exit 1
