#!/usr/bin/env bash
# make demo: deploy the whole stack (playbooks/site.yml) into a local systemd container with the relay
# stand-in as the practable relay, play recorded lab sessions through the remote relay as lab UIs
# would, and show what the dashboard would show for one student. Clean up with `make demo-clean`.
source "$(dirname "$0")/../scripts/lib.sh"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$COLLECTIONS"
export MOLECULE_IMAGE="${MOLECULE_IMAGE:-localhost/bullseye-systemd:latest}"
export PRACTABLE_E2E_PORT="${PRACTABLE_DEMO_PORT:-18082}"
cd "$ROOT"
SECRET="$(grep -E '^e2e_secret:' molecule/shared/group_vars/all/e2e.yml | sed -E 's/^e2e_secret: *"?([^"]*)"?/\1/')"

# A container left by an earlier run that no longer answers (its processes gone while podman still
# lists it, e.g. after the host's podman state was reset) would make every task UNREACHABLE: start anew.
if podman container exists practable-demo && ! podman exec practable-demo true >/dev/null 2>&1; then
    log "container practable-demo exists but does not answer: removing it, converge creates it again"
    bash "$ROOT/demo/clean.sh" --container-only
fi

log "1/2 deploying Go, the relay host, its rules and the analytics loggers into container practable-demo (molecule converge -s demo; about 2 min the first time, 1-2 min after)"
molecule converge -s demo 2>&1 | tee "$CACHE/demo-converge.log" | grep -E --line-buffered '^(PLAY|TASK|fatal|failed|changed|ok: \[practable-demo\] =>)|RECAP|practable-demo *:' \
    | sed -u -e 's/\*\{3,\}//' || true
[ "${PIPESTATUS[0]}" -eq 0 ] || die "converge failed: see $CACHE/demo-converge.log"

log "2/2 playing the recorded sessions and asking as the dashboard"
python demo/play.py --container practable-demo --secret "$SECRET" \
    --remote-port "$PRACTABLE_E2E_PORT" --access-base "http://host.containers.internal:$PRACTABLE_E2E_PORT" \
    --out "$ROOT/demo/out"

log "the class view: URL, tunnel and a screenshot of the course page"
python demo/class_view.py --container practable-demo --out "$ROOT/demo/out" || log "class view not reachable (see above)"
