#!/usr/bin/env bash
# Run molecule with the project's venv and offline collections: scripts/molecule.sh test [-s SCENARIO]
source "$(dirname "$0")/lib.sh"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$COLLECTIONS"
export MOLECULE_IMAGE="${MOLECULE_IMAGE:-localhost/bullseye-systemd:latest}"
cd "$ROOT"
exec molecule "$@"
