#!/usr/bin/env bash
# Prepare this machine for the demo and the tests. Idempotent: a second run only checks.
#   1. Debian packages: podman + runc (crun cannot run on hybrid cgroups), debootstrap, python3-venv,
#      golang-go (the offline Go tarball is packed from it), git.
#   2. /etc/containers/containers.conf: runtime runc and no default ulimits, merged into what is there.
#   3. .venv/ with requirements-dev.txt (ansible-core, molecule, the analytics package, test tools).
#   4. .collections/: containers.podman, community.general, ansible.posix unpacked offline from the
#      PyPI `ansible` bundle wheel (Galaxy is not needed), and practable.analytics linked to this checkout.
# Uses sudo only when not root. Usage: scripts/setup.sh
source "$(dirname "$0")/lib.sh"

APT_PACKAGES="podman runc debootstrap python3-venv python3-pip golang-go git ca-certificates tar gzip unzip uidmap slirp4netns chromium prometheus"
ANSIBLE_BUNDLE="${ANSIBLE_BUNDLE:-ansible==12.*}"
BUNDLED_COLLECTIONS="containers/podman community/general ansible/posix"

# ---------- 1. Debian packages ----------
missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "apt-get install:$missing"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
else
    log "Debian packages present"
fi

# ---------- 2. containers.conf ----------
conf=/etc/containers/containers.conf
want_ok() { [ -f "$conf" ] && grep -Eq '^\s*runtime\s*=\s*"runc"' "$conf" && grep -Eq '^\s*default_ulimits\s*=\s*\[\s*\]' "$conf"; }
if want_ok; then
    log "$conf already selects runc without default ulimits"
else
    log "merging runtime=runc and default_ulimits=[] into $conf"
    tmp="$(mktemp)"
    $SUDO mkdir -p /etc/containers
    [ -f "$conf" ] && $SUDO cp "$conf" "$conf.bak.$(date +%s)"
    python3 - "$conf" "$tmp" <<'PY'
import re
import sys

src, dst = sys.argv[1], sys.argv[2]
try:
    lines = open(src).read().splitlines()
except FileNotFoundError:
    lines = []
want = {"containers": ("default_ulimits", "default_ulimits = []"), "engine": ("runtime", 'runtime = "runc"')}
out, section, seen = [], None, set()
for line in lines:
    m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
    if m:
        section = m.group(1).strip()
        out.append(line)
        if section in want:
            out.append(want[section][1])
            seen.add(section)
        continue
    if section in want and re.match(r"^\s*%s\s*=" % want[section][0], line):
        continue  # replaced by ours (multi-line arrays are not used for these keys)
    out.append(line)
for section, (_, text) in want.items():
    if section not in seen:
        out += ["", "[%s]" % section, text]
open(dst, "w").write("\n".join(out).strip("\n") + "\n")
PY
    $SUDO install -m 0644 "$tmp" "$conf"
    rm -f "$tmp"
fi

# ---------- 3. the venv ----------
cd "$ROOT"
req_key="$( { cat requirements-dev.txt; cat requirements.txt 2>/dev/null || true; cat analytics_src/pyproject.toml; python3 --version; } | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.setup-stamp" ] && [ "$(cat "$VENV/.setup-stamp")" = "$req_key" ]; then
    log "venv $VENV up to date"
else
    log "creating/updating venv $VENV (a few minutes on a fresh machine)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
    reqs=requirements-dev.txt
    if [ ! -f requirements.txt ]; then
        log "requirements.txt not found: installing requirements-dev.txt without it"
        reqs="$(mktemp)"; grep -v '^-r requirements.txt' requirements-dev.txt > "$reqs"
    fi
    "$VENV/bin/python" -m pip install -q -r "$reqs" 2> >(grep -v "^WARNING: Location" >&2)
    echo "$req_key" > "$VENV/.setup-stamp"
fi

# ---------- 4. collections, offline ----------
col_key="$ANSIBLE_BUNDLE $BUNDLED_COLLECTIONS"
if [ -f "$COLLECTIONS/.setup-stamp" ] && [ "$(cat "$COLLECTIONS/.setup-stamp")" = "$col_key" ]; then
    log "collections in $COLLECTIONS up to date"
else
    mkdir -p "$CACHE/ansible-bundle"
    if ! ls "$CACHE"/ansible-bundle/ansible-*.whl >/dev/null 2>&1; then
        log "downloading the $ANSIBLE_BUNDLE bundle wheel (collections source, once)"
        "$VENV/bin/python" -m pip download -q --no-deps -d "$CACHE/ansible-bundle" "$ANSIBLE_BUNDLE" \
            2> >(grep -v "^WARNING: Location" >&2)
    fi
    wheel="$(ls "$CACHE"/ansible-bundle/ansible-*.whl | tail -1)"
    log "unpacking $BUNDLED_COLLECTIONS from $(basename "$wheel")"
    rm -rf "$COLLECTIONS.tmp"; mkdir -p "$COLLECTIONS.tmp"
    patterns=""
    for c in $BUNDLED_COLLECTIONS; do patterns="$patterns ansible_collections/$c/*"; done
    # shellcheck disable=SC2086
    unzip -q "$wheel" $patterns -d "$COLLECTIONS.tmp"
    rm -rf "$COLLECTIONS"; mv "$COLLECTIONS.tmp" "$COLLECTIONS"
    echo "$col_key" > "$COLLECTIONS/.setup-stamp"
fi
# practable.analytics itself resolves through the committed collections/ link; add one only if absent.
if [ ! -e "$ROOT/collections/ansible_collections/practable/analytics" ]; then
    mkdir -p "$COLLECTIONS/ansible_collections/practable"
    ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/practable/analytics"
else
    rm -rf "$COLLECTIONS/ansible_collections/practable"
fi

log "setup done: venv $VENV, collections $COLLECTIONS"
