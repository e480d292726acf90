#!/usr/bin/env bash
# Build what the roles would otherwise fetch from the internet, so the scenarios converge offline:
#   .cache/offline/go/go<ver>.linux-amd64.tar.gz (+ .sha256)  a Go tarball packed the way go.dev
#       packs it (top directory go/), made from Debian's golang-go, for the golang role's
#       "local tarball + checksum" path;
#   .cache/offline/relay.git  a git repository of a fake practable relay (tests/fixtures/relay-repo
#       + the relay stand-in) tagged v0.2.3, for the relay role's clone + go build path;
#   .cache/offline/wheelhouse-cpXY/  the analytics package and its serving dependencies as wheels for
#       each Python the scenarios' targets have (asked of each image's interpreter, never assumed:
#       scripts/e2e_platforms.py targets), manylinux x86_64, for pip --no-index;
#   .cache/offline/inputs.yml  the facts above as Ansible variables (read by the scenarios).
# Each part is rebuilt only when its inputs changed.
# Usage: scripts/build-offline-inputs.sh     env OFFLINE_PARTS (default "go relay wheels"),
#   MOLECULE_SCENARIOS (whose targets get a wheelhouse), TARGET_PYTHON_VERSIONS (e.g. "3.8 3.9": no detection)
source "$(dirname "$0")/lib.sh"

OUT="$CACHE/offline"
TARGET_PLATFORM="${TARGET_PLATFORM:-manylinux2014_x86_64}"
PIP="$VENV/bin/pip"
[ -x "$PIP" ] || PIP="python3 -m pip"
mkdir -p "$OUT"

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# ---------- (a) Go tarball ----------
go_tarball() {
    command -v go >/dev/null || die "go missing: run scripts/setup.sh first (golang-go)"
    local goroot ver arch name dir
    goroot="$(go env GOROOT)"
    ver="$(go env GOVERSION)"; ver="${ver#go}"
    arch="$(go env GOARCH)"
    name="go${ver}.linux-${arch}.tar.gz"
    GO_VERSION="$ver"; GO_TARBALL="$OUT/go/$name"
    if [ -s "$GO_TARBALL" ] && [ -s "$GO_TARBALL.sha256" ]; then
        log "Go tarball $name cached"; return 0
    fi
    log "packing $goroot as $name"
    dir="$(mktemp -d)"
    mkdir -p "$dir/go" "$OUT/go"
    # Debian spreads GOROOT over symlinks into /usr/share/go-*: follow them.
    (cd "$goroot" && tar -chf - --exclude=./test --exclude=./misc/wasm --exclude=./pkg/obj . ) | tar -C "$dir/go" -xf -
    [ -f "$dir/go/VERSION" ] || printf 'go%s\n' "$ver" > "$dir/go/VERSION"
    [ -x "$dir/go/bin/go" ] && [ -x "$dir/go/bin/gofmt" ] && [ -d "$dir/go/pkg/tool" ] && [ -d "$dir/go/src/runtime" ] \
        || die "GOROOT copy incomplete"
    # Debian links bin/go (and pprof, trace) against the build host's glibc; go.dev's are static.
    # Rebuild them without cgo so the tarball runs on older targets (bullseye: glibc 2.31).
    log "rebuilding go, pprof and trace statically (about a minute)"
    (
        export GOROOT="$dir/go" CGO_ENABLED=0 GOCACHE="$dir/.gocache" GOPATH="$dir/.gopath" GOFLAGS= GOTOOLCHAIN=local
        cd "$dir/go/src"
        "$dir/go/bin/go" build -o "$dir/go.new" cmd/go
        "$dir/go/bin/go" build -o "$dir/go/pkg/tool/linux_$arch/pprof" cmd/pprof
        "$dir/go/bin/go" build -o "$dir/go/pkg/tool/linux_$arch/trace" cmd/trace
        mv "$dir/go.new" "$dir/go/bin/go"
    ) || die "static rebuild of the go command failed"
    rm -rf "$dir/.gocache" "$dir/.gopath"
    tar -C "$dir" -czf "$GO_TARBALL.tmp" --owner=0 --group=0 --numeric-owner go
    rm -rf "$dir"
    # Check it the way the role will use it: unpacked elsewhere, GOROOT auto-detected.
    dir="$(mktemp -d)"
    tar -C "$dir" -xzf "$GO_TARBALL.tmp"
    (
        unset GOROOT GOPATH GOFLAGS
        export HOME="$dir" GOCACHE="$dir/cache" GOPATH="$dir/gopath" GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
        "$dir/go/bin/go" version | grep -q "go$ver" || die "unpacked go does not report $ver"
        [ "$("$dir/go/bin/go" env GOROOT)" = "$dir/go" ] || die "GOROOT not auto-detected: $("$dir/go/bin/go" env GOROOT)"
        mkdir -p "$dir/m" && cd "$dir/m"
        printf 'module example.com/m\n\ngo 1.16\n' > go.mod
        printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("ok") }\n' > main.go
        "$dir/go/bin/go" build -o m . && [ "$(./m)" = ok ] || die "go build with the unpacked tarball failed"
    )
    rm -rf "$dir"
    mv "$GO_TARBALL.tmp" "$GO_TARBALL"
    (cd "$OUT/go" && sha256sum "$name" > "$name.sha256")
    log "Go tarball ready: $GO_TARBALL ($(du -h "$GO_TARBALL" | cut -f1))"
}

# ---------- (b) fake relay repository ----------
relay_repo() {
    local fixture="$ROOT/tests/fixtures/relay-repo" standin="$ROOT/tests/relay_standin/relay_standin.py"
    [ -f "$standin" ] || die "missing $standin"
    local key
    key="$(cd "$ROOT" && cat "$standin" $(find "$fixture" -type f | sort) | sha256sum | cut -c1-16)"
    RELAY_REPO="$OUT/relay.git"; RELAY_VERSION="v0.2.3"
    if stamp_ok "$OUT/relay.stamp" "$key" && [ -d "$RELAY_REPO" ]; then
        log "fake relay repository cached"; return 0
    fi
    log "assembling the fake relay repository (tag $RELAY_VERSION)"
    local work
    work="$(mktemp -d)"
    cp -a "$fixture/." "$work/"
    cp "$standin" "$work/cmd/session/relay_standin.py"
    cp "$standin" "$work/cmd/relay/relay_standin.py"
    (
        cd "$work"
        export GIT_AUTHOR_NAME=fixture GIT_AUTHOR_EMAIL=fixture@invalid GIT_COMMITTER_NAME=fixture \
            GIT_COMMITTER_EMAIL=fixture@invalid GIT_AUTHOR_DATE="2023-01-20T00:00:00Z" \
            GIT_COMMITTER_DATE="2023-01-20T00:00:00Z"
        git init -q -b main . 2>/dev/null || { git init -q . && git checkout -q -b main; }
        git add -A && git commit -q -m "fake relay for offline tests"
        git tag v0.2.3
        # Build offline exactly as the role will: no proxy, no requirements.
        export GOPROXY=off GOFLAGS=-mod=mod GOCACHE="$work/.gocache" GOPATH="$work/.gopath" GOTOOLCHAIN=local
        go build -o /dev/null ./cmd/session && go build -o /dev/null ./cmd/relay
        rm -rf "$work/.gocache" "$work/.gopath"
    ) || die "fake relay repository does not build offline"
    rm -rf "$RELAY_REPO"
    git clone -q --bare "$work" "$RELAY_REPO"
    # Few files: roles copy this directory file by file to the host.
    git --git-dir="$RELAY_REPO" repack -adq
    git --git-dir="$RELAY_REPO" prune-packed
    rm -rf "$RELAY_REPO/hooks" "$RELAY_REPO/info" "$RELAY_REPO/description"
    find "$RELAY_REPO" -type d -empty -delete
    mkdir -p "$RELAY_REPO/refs/heads" "$RELAY_REPO/refs/tags"
    rm -rf "$work"
    echo "$key" > "$OUT/relay.stamp"
}

# ---------- (c) one wheelhouse per Python the targets have ----------
# image_python IMAGE PYTHON: "3.X" of PYTHON inside IMAGE, asked of the interpreter itself (the image
# is mounted read-only, no container runs).
image_python() {
    local image="$1" py="$2" mnt v
    mnt="$(podman image mount "$image")" || return 1
    v="$(chroot "$mnt" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin "$py" -c \
        'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || v=""
    podman image unmount "$image" >/dev/null || true
    [ -n "$v" ] && echo "$v"
}

# target_pythons: the Python versions of every platform of the scenarios (resolved_scenarios, lib.sh)
# (or $TARGET_PYTHON_VERSIONS).
target_pythons() {
    if [ -n "${TARGET_PYTHON_VERSIONS:-}" ]; then echo "$TARGET_PYTHON_VERSIONS"; return 0; fi
    local image py name v out=""
    # shellcheck disable=SC2086
    while read -r image py name; do
        if ! podman image exists "$image"; then
            log "$name: image $image absent (scripts/build-image.sh): no wheelhouse for it"; continue
        fi
        v="$(image_python "$image" "$py")" || die "$name: cannot run $py in $image to learn its version"
        log "$name: $image has $py = Python $v"
        case " $out " in *" $v "*) ;; *) out="$out $v" ;; esac
    done < <("$VENV/bin/python" "$ROOT/scripts/e2e_platforms.py" targets $(resolved_scenarios))
    echo "$out"
}

wheel_key() {
    (cd "$ROOT/analytics_src" && { find src pyproject.toml -type f | sort | xargs cat; echo "$1 $TARGET_PLATFORM"; } | sha256sum | cut -c1-16)
}

# wheelhouse VERSION: the analytics package and its serving dependencies as binary wheels for CPython
# VERSION on $TARGET_PLATFORM, in $OUT/wheelhouse-cpXY, for pip --no-index.
wheelhouse() {
    local ver="$1" tag key dir
    tag="cp${ver/./}"
    dir="$OUT/wheelhouse-$tag"
    key="$(wheel_key "$ver")"
    if stamp_ok "$dir.stamp" "$key" && ls "$dir"/practable_analytics-*.whl >/dev/null 2>&1; then
        log "wheelhouse $tag cached"; return 0
    fi
    log "building the wheelhouse for CPython $ver $TARGET_PLATFORM"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    if [ -z "${PACKAGE_WHEEL:-}" ]; then
        local build
        build="$(mktemp -d)"
        cp -a "$ROOT/analytics_src/." "$build/"
        rm -rf "$build/build" "$build"/src/*.egg-info
        $PIP wheel -q --no-deps -w "$OUT" "$build"
        rm -rf "$build"
        PACKAGE_WHEEL="$(ls -t "$OUT"/practable_analytics-*.whl | head -1)"
    fi
    cp "$PACKAGE_WHEEL" "$dir.tmp/"
    # The serving dependencies and the class view's (extra web), as binary wheels for the target. pip
    # evaluates markers with this machine's Python: importlib-metadata (Flask's, Python < 3.10) is named.
    $PIP download -q --only-binary=:all: --python-version "$ver" --platform "$TARGET_PLATFORM" \
        --implementation cp -d "$dir.tmp" "$dir.tmp/$(basename "$PACKAGE_WHEEL")[web]" \
        "importlib-metadata>=3.6" pip setuptools wheel
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    echo "$key" > "$dir.stamp"
    log "wheelhouse $tag: $(ls "$dir" | tr '\n' ' ')"
}

wheelhouses() {
    local v
    PYTHONS="$(target_pythons)"
    [ -n "$PYTHONS" ] || die "no target Python found for the scenarios $E2E_SCENARIOS"
    rm -rf "$OUT"/practable_analytics-*.whl "$OUT/wheelhouse" "$OUT/wheelhouse.stamp"  # one per version now
    PACKAGE_WHEEL=""
    for v in $PYTHONS; do wheelhouse "$v"; done
    rm -f "$OUT"/practable_analytics-*.whl
}

PARTS="${OFFLINE_PARTS:-go relay wheels}"
case " $PARTS " in *" go "*) go_tarball ;; esac
case " $PARTS " in *" relay "*) relay_repo ;; esac
case " $PARTS " in *" wheels "*) wheelhouses ;; esac
[ "$PARTS" = "go relay wheels" ] || { log "partial run ($PARTS): inputs.yml not written"; exit 0; }

cat > "$OUT/inputs.yml.tmp" <<YML
# Written by scripts/build-offline-inputs.sh: local stand-ins for every internet source.
offline_dir: "$OUT"
offline_go_version: "$GO_VERSION"
offline_go_tarball: "$GO_TARBALL"
offline_go_sha256: "$(cut -d' ' -f1 "$GO_TARBALL.sha256")"
offline_relay_repo: "$RELAY_REPO"
offline_relay_version: "$RELAY_VERSION"
YML
# Every wheelhouse built for the current package (also by earlier runs for other scenarios), by Python
# version; the first target's is also offline_wheelhouse.
first="$(echo "$PYTHONS" | awk '{print $1}')"
echo "offline_wheelhouses:" >> "$OUT/inputs.yml.tmp"
for stamp in "$OUT"/wheelhouse-cp*.stamp; do
    [ -f "$stamp" ] || continue
    d="${stamp%.stamp}"; tag="${d##*-cp}"; v="${tag:0:1}.${tag:1}"
    stamp_ok "$stamp" "$(wheel_key "$v")" || continue
    printf '  "%s": "%s"\n' "$v" "$d" >> "$OUT/inputs.yml.tmp"
done
cat >> "$OUT/inputs.yml.tmp" <<YML
offline_wheelhouse: "$OUT/wheelhouse-cp${first/./}"
offline_analytics_wheel: "$(ls "$OUT/wheelhouse-cp${first/./}"/practable_analytics-*.whl)"
YML
mv "$OUT/inputs.yml.tmp" "$OUT/inputs.yml"
log "offline inputs in $OUT"
