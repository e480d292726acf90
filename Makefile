# The README's two commands are `make demo` and `make test`; the other targets are their steps.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help setup image inputs test lint unit molecule demo demo-clean clean

help:
	@echo "make demo        deploy into a local systemd container, play recorded lab sessions, show the dashboard"
	@echo "make test        setup, then lint, unit, analytics, stand-in and molecule end-to-end tests (CI)"
	@echo "make demo-clean  remove the demo container and its output"
	@echo "steps: make setup | image | inputs | lint | unit | molecule | clean"

setup:
	bash scripts/setup.sh

image: setup
	bash scripts/build-image.sh

inputs: setup
	bash scripts/build-offline-inputs.sh

test: setup image inputs
	bash scripts/test.sh

lint: setup
	TEST_STEPS="lint" bash scripts/test.sh

unit: setup
	TEST_STEPS="lint unit" bash scripts/test.sh

molecule: setup image inputs
	TEST_STEPS="molecule" bash scripts/test.sh

demo: setup image inputs
	bash demo/run.sh

demo-clean:
	bash demo/clean.sh

# Removes containers and the project's venv and collections; keeps .cache (image root fs, inputs).
clean: demo-clean
	-bash scripts/molecule.sh destroy --all
	rm -rf .venv .collections
