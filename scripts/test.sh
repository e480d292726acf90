#!/usr/bin/env bash
# What `make test` runs after setup, image and offline inputs: every step runs even when an earlier one
# failed, then a summary; exit status 1 when any step failed.
#   lint      ruff (analytics_src, relay stand-in, plugins, e2e scripts), scripts/collection-checks.sh
#   unit      pytest tests/unit tests/relay_standin, pytest analytics_src/tests; analytics and stand-in again on Python 3.8
#   molecule  molecule test of each scenario (converge, idempotence, end-to-end verify): default,
#             platforms (bookworm single-process, trixie, bullseye-legacy in parallel), ubuntu (real Ubuntu
#             20.04, 22.04 and 24.04 in parallel; where Ubuntu's archive is out of reach, py38 stands in:
#             bookworm with a CPython 3.8)
# Env: PYTEST_WORKERS (default: the number of cores, at most 4) for the analytics suites.
# Env: TEST_STEPS (default "lint unit molecule"), MOLECULE_SCENARIOS (default: scripts/lib.sh).
source "$(dirname "$0")/lib.sh"
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$COLLECTIONS"
export PYTHON38="${PYTHON38:-$(ls -d "$HOME"/.pyenv/versions/3.8*/bin/python3.8 2>/dev/null | tail -n 1)}"  # tests' 3.8, if any
cd "$ROOT"

STEPS="${TEST_STEPS:-lint unit molecule}"
# pytest-xdist workers for the analytics suites: one per core (the suites wait on sockets more than
# they compute; more workers than cores load the relay stand-in until its lossy hand-off, SPEC 4,
# drops answers that the stream tests count)
export PYTEST_WORKERS="${PYTEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
SCENARIOS="$(resolved_scenarios)"
RESULTS=()
FAILED=0
PASSED=0
LOGDIR="$CACHE/test-logs"
mkdir -p "$LOGDIR"

step() {
    local name="$1"; shift
    local start rc
    start=$(date +%s)
    log "step $name: $*"
    set +e
    "$@" 2>&1 | tee "$LOGDIR/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    local took=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("$(printf 'PASS  %-28s %5ss' "$name" "$took")"); PASSED=$((PASSED + 1))
    else
        RESULTS+=("$(printf 'FAIL  %-28s %5ss  exit %s, log %s' "$name" "$took" "$rc" "$LOGDIR/$name.log")"); FAILED=$((FAILED + 1))
    fi
    printf '%s %s %ss rc=%s\n' "$(date -u +%FT%TZ)" "test:$name" "$took" "$rc" >> "$CACHE/timings.txt"
}

has_step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if has_step lint; then
    step ruff-analytics ruff check analytics_src
    step mypy bash -c 'cd analytics_src && mypy'
    lint_paths=()
    for p in tests/relay_standin plugins; do
        [ -d "$p" ] && [ -n "$(find "$p" -name '*.py' -print -quit)" ] && lint_paths+=("$p")
    done
    if [ ${#lint_paths[@]} -gt 0 ]; then
        step ruff-standin-plugins ruff check --config analytics_src/pyproject.toml "${lint_paths[@]}"
    fi
    # controller-side e2e tools: their own ruff.toml extends the package's rules
    step ruff-e2e ruff check molecule demo
    step ruff-scripts ruff check --config molecule/ruff.toml scripts
    step shell-syntax bash -c 'for f in scripts/*.sh demo/*.sh .ci/run; do [ -f "$f" ] && bash -n "$f" || exit 1; done'
    if [ -f scripts/collection-checks.sh ]; then
        step collection-checks bash scripts/collection-checks.sh
    fi
fi

if has_step unit; then
    unit_paths=()
    # tests/unit already ran inside scripts/collection-checks.sh when it exists
    for p in tests/unit tests/relay_standin; do
        [ "$p" = tests/unit ] && [ -f scripts/collection-checks.sh ] && has_step lint && continue
        [ -d "$p" ] && unit_paths+=("$p")
    done
    if [ ${#unit_paths[@]} -gt 0 ]; then
        step pytest-plugins-standin python -m pytest -q -p no:cacheprovider "${unit_paths[@]}"
    fi
    step pytest-analytics bash -c 'cd analytics_src && python -m pytest -q -p no:cacheprovider -n "$PYTEST_WORKERS" tests'
    step pytest-py38 bash scripts/test-py38.sh
    step promtool bash tests/prometheus/check.sh python
fi

if has_step molecule; then
    for s in $SCENARIOS; do
        # shellcheck disable=SC2046
        for image in $(python scripts/e2e_platforms.py images "$s"); do
            podman image exists "$image" || { log "SKIP molecule-$s: no image $image (py38: no CPython 3.8 here, set PYTHON38)"; RESULTS+=("$(printf 'SKIP  %-28s        no image %s' "molecule-$s" "$image")"); continue 2; }
        done
        step "molecule-$s" molecule test -s "$s"
    done
fi

echo
echo "================ summary ================"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo "steps: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
