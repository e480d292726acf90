# shellcheck shell=bash
# Common helpers for the e2e scripts (sourced, never executed).
# Sets ROOT (the repository), CACHE (.cache), VENV (.venv), SUDO (empty when root), E2E_SCENARIOS
# (the molecule scenarios `make test` runs; env MOLECULE_SCENARIOS; resolved_scenarios applies the
# stand-ins), ANSIBLE_HOME (.ansible: ansible's
# and molecule's caches stay inside the checkout).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PRACTABLE_CACHE:-$ROOT/.cache}"
VENV="${PRACTABLE_VENV:-$ROOT/.venv}"
COLLECTIONS="$ROOT/.collections"
E2E_SCENARIOS="${MOLECULE_SCENARIOS:-default platforms ubuntu}"
# A scenario whose image cannot be had here and the one that stands in for it: ubuntu needs Ubuntu's
# archive (scripts/build-image.sh); py38 gives Ubuntu 20.04's CPython 3.8 path on bookworm.
E2E_STANDINS="ubuntu:py38"
# standin_for SCENARIO: the scenario that stands in for it, or nothing
standin_for() {
    local pair
    for pair in $E2E_STANDINS; do [ "${pair%%:*}" = "$1" ] && { echo "${pair#*:}"; return 0; }; done
    return 0
}
# resolved_scenarios: $E2E_SCENARIOS with each scenario whose images are missing replaced by its stand-in
# (after scripts/build-image.sh has built what it could)
resolved_scenarios() {
    local s image out="" missing alt
    for s in $E2E_SCENARIOS; do
        missing=""
        for image in $("$VENV/bin/python" "$ROOT/scripts/e2e_platforms.py" images "$s"); do
            podman image exists "$image" || missing="$image"
        done
        alt="$(standin_for "$s")"
        if [ -n "$missing" ] && [ -n "$alt" ]; then
            log "no image $missing for scenario $s: $alt stands in for it"
            s="$alt"
        fi
        case " $out " in *" $s "*) ;; *) out="$out $s" ;; esac
    done
    echo "${out# }"
}
export ANSIBLE_HOME="$ROOT/.ansible"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
export HOME="${HOME:-/root}"
[ -d "$HOME" ] || HOME=/tmp
export HOME PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE"

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
# Every script reports its wall time on exit (and appends it to .cache/timings.txt).
E2E_SCRIPT="$(basename "$0")"
E2E_START=$(date +%s)
e2e_report_time() {
    local rc=$? took=$(( $(date +%s) - E2E_START ))
    printf '%s %s %ss rc=%s\n' "$(date -u +%FT%TZ)" "$E2E_SCRIPT" "$took" "$rc" >> "$CACHE/timings.txt" 2>/dev/null || true
    log "$E2E_SCRIPT finished in ${took}s (exit $rc)"
}
trap e2e_report_time EXIT
# timed NAME CMD...: runs CMD and appends "NAME seconds" to .cache/timings.txt
timed() {
    local name="$1"; shift
    local start end
    start=$(date +%s)
    "$@"
    end=$(date +%s)
    printf '%s %ss\n' "$name" "$((end - start))" | tee -a "$CACHE/timings.txt" >&2
}
