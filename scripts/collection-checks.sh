#!/usr/bin/env bash
# Checks of the practable.analytics collection itself (not the analytics package, not molecule):
#   1. unit tests of the plugins, roles' script and argument specs (pytest, against the relay stand-in)
#   2. ansible-lint --profile production
#   3. ansible-test sanity on a copy laid out as ansible_collections/practable/analytics
#   4. ansible-galaxy collection build, and the tarball holds no tests/, molecule/ or analytics_src/tests
#   5. ansible-playbook --syntax-check of every playbook with both inventories
# Usage: scripts/collection-checks.sh [step ...]      steps: units lint sanity build syntax (default: all)
# Environment: VENV (default .venv, else /work/venv), SANITY_PYTHON (default 3.11),
#   SANITY_VENV (a venv with ansible-core for ansible-test; default: the controller venv),
#   SANITY_SKIP (space separated extra tests to skip; pslint always, it needs PowerShell).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-}"
if [ -z "$VENV" ]; then
    if [ -x "$ROOT/.venv/bin/ansible" ]; then VENV="$ROOT/.venv"; else VENV=/work/venv; fi
fi
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
SANITY_PYTHON="${SANITY_PYTHON:-3.11}"
STEPS="${*:-units lint sanity build syntax}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { printf '\n=== %s\n' "$*"; }

# Offline collections the playbooks need (community.general for ufw) must be resolvable.
need_collections() {
    local listed
    listed="$(ansible-galaxy collection list community.general 2>/dev/null || true)"
    if ! grep -q community.general <<< "$listed"; then
        echo "community.general is not installed: run scripts/setup.sh (offline, from the PyPI ansible bundle)" >&2
        echo "or see docs/collection.md" >&2
        exit 1
    fi
}

# The collection's own files, as the build and the sanity test see them.
collection_files() {
    git ls-files -co --exclude-standard \
        | grep -v -E '^(analytics_src|molecule|demo|collections|scripts|\.ci|\.ansible|\.collections|\.cache|\.venv)/' \
        | grep -v -E '^tests/(relay_standin|fixtures)/' \
        | while read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done
}

step_units() {
    log "unit tests (tests/unit)"
    python -m pytest -q -p no:cacheprovider tests/unit
}

step_lint() {
    need_collections
    log "ansible-lint --profile production"
    ansible-lint --profile production --offline site.yml playbooks roles inventory galaxy.yml meta
}

step_sanity() {
    log "ansible-test sanity --python $SANITY_PYTHON (copy in $WORK)"
    local dest="$WORK/sanity/ansible_collections/practable/analytics"
    mkdir -p "$dest"
    collection_files | tar -cf - -T - | tar -xf - -C "$dest"
    (cd "$dest" && git init -q && git add -A)
    # ansible-test bootstraps pip in its venvs from ci-files.testing.ansible.com, unreachable here: an
    # equivalent bootstrap (ensurepip, then pip from the configured index) goes where it looks first.
    local cache="$HOME/.ansible/test/cache" version
    version="$(python - <<'PY'
import ansible_test._internal.python_requirements as r
print(r.PIP_VERSION if hasattr(r, "PIP_VERSION") else "")
PY
)" || version=""
    mkdir -p "$cache"
    for v in ${version:-24.2} 24.2; do
        local shim="$cache/get_pip_${v//./_}.py"
        [ -f "$shim" ] && continue
        cat > "$shim" <<'PY'
"""Offline stand-in for get-pip.py: ensurepip, the machine's pip settings, then the requested pip."""
import ensurepip
import os
import shutil
import subprocess
import sys

ensurepip.bootstrap(upgrade=False)
for conf in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf"):
    if os.path.exists(conf):
        shutil.copy(conf, os.path.join(sys.prefix, "pip.conf"))
        break
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip leaves it pointing at os.devnull
os.environ.pop("ENSUREPIP_OPTIONS", None)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
    done
    local skip="--skip-test pslint"
    for t in ${SANITY_SKIP:-}; do skip="$skip --skip-test $t"; done
    command -v shellcheck >/dev/null || { echo "shellcheck missing: skipping that test (apt-get install shellcheck)"; skip="$skip --skip-test shellcheck"; }
    # shellcheck disable=SC2086
    (cd "$dest" && ansible-test sanity --python "$SANITY_PYTHON" $skip --color no)
    # Modules and module_utils run on the targets' Python: compile and import them with 3.8 too.
    local py38="${SANITY_PY38:-}"
    if [ -z "$py38" ]; then
        for candidate in "$HOME"/.pyenv/versions/3.8.*/bin/python3.8 /usr/bin/python3.8; do
            [ -x "$candidate" ] && { py38="$candidate"; break; }
        done
    fi
    if [ -n "$py38" ]; then
        log "ansible-test sanity compile + import on Python 3.8 ($py38)"
        (cd "$dest" && PATH="$(dirname "$py38"):$PATH" ansible-test sanity --python 3.8 --test compile --test import --color no)
    else
        echo "no Python 3.8 found: skipping compile/import on 3.8 (set SANITY_PY38)"
    fi
}

step_build() {
    log "ansible-galaxy collection build"
    ansible-galaxy collection build --force --output-path "$WORK/build" "$ROOT" >/dev/null
    local tarball
    tarball="$(ls "$WORK"/build/practable-analytics-*.tar.gz)"
    tar -tzf "$tarball" > "$WORK/contents.txt"
    local bad
    bad="$(grep -E '^(tests|molecule|demo|collections|\.cache|\.venv|\.collections|\.ansible)/|^analytics_src/(tests|benchmarks)/|__pycache__|\.hypothesis|\.pytest_cache|\.ruff_cache|vault[^/]*$' "$WORK/contents.txt" || true)"
    if [ -n "$bad" ]; then
        echo "the collection tarball holds files it must not:" >&2
        echo "$bad" | head -20 >&2
        exit 1
    fi
    for must in MANIFEST.json plugins/modules/relay_destination.py roles/relay/tasks/main.yml playbooks/site.yml \
        meta/runtime.yml analytics_src/pyproject.toml; do
        grep -qx "$must" "$WORK/contents.txt" || { echo "the tarball lacks $must" >&2; exit 1; }
    done
    echo "$(basename "$tarball"): $(wc -l < "$WORK/contents.txt") entries, $(du -h "$tarball" | cut -f1); no tests/, molecule/, analytics_src tests"
}

step_syntax() {
    need_collections
    log "ansible-playbook --syntax-check (both inventories)"
    local inv pb
    for inv in inventory/aws inventory/raspberrypi; do
        for pb in site.yml playbooks/*.yml; do
            ansible-playbook --syntax-check -i "$inv" "$pb" >/dev/null
            echo "ok: $pb with $inv"
        done
    done
}

for step in $STEPS; do
    case "$step" in
        units|lint|sanity|build|syntax) "step_$step" ;;
        *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
log "collection checks passed: $STEPS"
