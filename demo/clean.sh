#!/usr/bin/env bash
# make demo-clean: remove the demo container and the demo's output (the image and .cache stay).
# --container-only: the container alone (run.sh, when the one it finds does not answer).
source "$(dirname "$0")/../scripts/lib.sh"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$COLLECTIONS"
cd "$ROOT"
if [ -x "$VENV/bin/molecule" ]; then
    molecule destroy -s demo >/dev/null 2>&1 || true
fi
podman rm -f practable-demo >/dev/null 2>&1 || true
if [ "${1:-}" = "--container-only" ]; then
    log "demo container removed"
    exit 0
fi
rm -rf "$ROOT/demo/out"
log "demo container and demo/out removed (image localhost/bullseye-systemd and .cache kept; make clean removes .venv)"
