#!/usr/bin/env bash
# Runs the analytics suite and the relay stand-in's tests on CPython 3.8, the Python of the targets
# (Ubuntu 20.04), in .venv38 with the package's serving and test dependencies (the 3.8 wheels the
# ranges in analytics_src/pyproject.toml admit). Plot/export tests skip there: their tools are optional.
# Without a python3.8 on PATH or under pyenv it says so and exits 0 (vermin still checks 3.8 syntax).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
PY38=""
for candidate in "${PYTHON38:-}" "$HOME"/.pyenv/versions/3.8*/bin/python3.8 /root/.pyenv/versions/3.8*/bin/python3.8 "$(command -v python3.8 || true)"; do
    # a pyenv shim exists even where it cannot run 3.8: ask the interpreter itself
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 8))' 2>/dev/null; then
        PY38="$candidate"; break
    fi
done
if [ -z "$PY38" ]; then
    log "no CPython 3.8 found (set PYTHON38=...): skipping the 3.8 run"
    exit 0
fi
V38="$ROOT/.venv38"
if [ ! -x "$V38/bin/python" ]; then
    "$PY38" -m venv "$V38"
fi
"$V38/bin/python" -m pip install -q --disable-pip-version-check -e "./analytics_src[test]"
log "analytics and stand-in tests on $("$V38/bin/python" --version)"
(cd analytics_src && "$V38/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" -m "not soak" tests)
"$V38/bin/python" -m pytest -q -p no:cacheprovider tests/relay_standin
