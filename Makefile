# The README's two commands are `make demo` and `make test`; the other targets are their steps.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help setup image inputs test lint unit molecule demo demo-clean clean distclean

help:
	@echo "make demo        deploy into a local systemd container, play recorded lab sessions, show the dashboard"
	@echo "make test        setup, then lint, unit, analytics, stand-in and molecule end-to-end tests (CI)"
	@echo "make demo-clean  remove the demo container and its output"
	@echo "steps: make setup | image | inputs | lint | unit | molecule | clean | distclean"

setup:
	bash scripts/setup.sh

# The images and wheelhouses of the scenarios in MOLECULE_SCENARIOS (default: scripts/lib.sh).
image: setup
	bash scripts/build-image.sh

inputs: setup image
	bash scripts/build-offline-inputs.sh

test: setup image inputs
	bash scripts/test.sh

lint: setup
	TEST_STEPS="lint" bash scripts/test.sh

unit: setup
	TEST_STEPS="lint unit" bash scripts/test.sh

molecule: setup image inputs
	TEST_STEPS="molecule" bash scripts/test.sh

# The demo needs only its own scenario's image and wheelhouse.
demo: setup
	MOLECULE_SCENARIOS=demo bash scripts/build-image.sh
	MOLECULE_SCENARIOS=demo bash scripts/build-offline-inputs.sh
	bash demo/run.sh

demo-clean:
	bash demo/clean.sh

# Removes what the commands made: containers, the venvs, collections, ansible's and molecule's state
# (.ansible), test logs. Keeps the downloads and what is built from them without a network: .cache
# (root filesystems, the ansible bundle, Go tarball, wheelhouses) and the podman images.
clean: demo-clean
	-bash scripts/molecule.sh destroy --all
	rm -rf .venv .venv38 .collections .ansible .cache/test-logs

# clean, and the cache and images too: the next run downloads and builds everything again.
distclean: clean
	-bash scripts/build-image.sh --remove
	rm -rf .cache
