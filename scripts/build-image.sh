#!/usr/bin/env bash
# Build the systemd container images the molecule scenarios boot, from Debian's (and Ubuntu's) archive
# with debootstrap (no registry is reachable). One image per flavour, named localhost/<flavour>-systemd:
#   focal            Ubuntu 20.04 from Ubuntu's archive: Python 3.8, systemd 245, iptables-legacy ufw.
#                    The archive's key is taken from Ubuntu's ubuntu-keyring package and used only when its
#                    fingerprint is the one pinned below. Skipped with a message when the archive is not
#                    reachable (its scenario then skips, and py38 stands in for it).
#   jammy, noble     Ubuntu 22.04 (Python 3.10, systemd 249) and 24.04 (Python 3.12, systemd 255), from the
#                    same archive with the same key, for the ubuntu scenario beside focal; skipped the same
#                    way (py38 then stands in for that scenario). A debootstrap that does not know a suite
#                    gets Ubuntu's common script.
#   bullseye         Debian 11: Python 3.9, systemd 247, glibc 2.31 (the Debian nearest Ubuntu 20.04)
#   bookworm         Debian 12: Python 3.11, systemd 252 (Raspberry Pi OS 12)
#   trixie           Debian 13: Python 3.13, systemd 257
#   bullseye-legacy  bullseye with iptables/ip6tables set to the legacy backend (what Ubuntu 20.04's ufw uses)
#   bookworm-py38    bookworm with a CPython 3.8 in /usr/local (python3 first on PATH is 3.8, as on
#                    Ubuntu 20.04; /usr/bin/python3 stays for apt). Needs a CPython 3.8 on this machine
#                    ($PYTHON38, or pyenv's): skipped with a message when there is none.
# Each suite's root filesystem is cached as .cache/rootfs-<suite>.tar; variants are derived from it at
# import time. An image podman already has is not rebuilt.
# Usage: scripts/build-image.sh [--force] [FLAVOUR|IMAGE ...]  |  scripts/build-image.sh --remove (every flavour's image)
#   without arguments: every image the scenarios in $MOLECULE_SCENARIOS (scripts/lib.sh) name;
#   an image that is not localhost/<flavour>-systemd (e.g. MOLECULE_IMAGE=a real ubuntu:20.04 systemd
#   image) must exist already.
# env: DEBIAN_MIRROR, UBUNTU_MIRROR, PYTHON38
source "$(dirname "$0")/lib.sh"

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
UBUNTU_MIRROR="${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
# "Ubuntu Archive Automatic Signing Key (2018)", which signs the Release files of focal, jammy and noble.
UBUNTU_KEY_FPR="F6ECB3762474EDA9D21B7022871920D1991BC93C"
UBUNTU_KEYRING_DEB="pool/main/u/ubuntu-keyring/ubuntu-keyring_2020.02.11.2_all.deb"
# What the roles need on a target that would otherwise come from the internet. Kept small.
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,python3-packaging,ca-certificates,sudo,git,acl,iproute2,procps,ufw,iptables,netbase"
FLAVOURS="bullseye bookworm trixie bullseye-legacy bookworm-py38 focal jammy noble"
FORCE=""
[ "${1:-}" = "--force" ] && { FORCE=1; shift; }
if [ "${1:-}" = "--remove" ]; then
    for f in $FLAVOURS; do
        podman image exists "localhost/$f-systemd:latest" && podman rmi "localhost/$f-systemd:latest" >/dev/null && log "removed localhost/$f-systemd"
    done
    exit 0
fi

# flavour -> debootstrap suite
suite_of() {
    case "$1" in
        bullseye|bullseye-legacy) echo bullseye ;;
        bookworm|bookworm-py38) echo bookworm ;;
        trixie) echo trixie ;;
        focal|jammy|noble) echo "$1" ;;
        *) return 1 ;;
    esac
}

is_ubuntu() { case "$1" in focal|jammy|noble) return 0 ;; *) return 1 ;; esac; }

# ubuntu_reachable SUITE
ubuntu_reachable() {
    curl -fsS -m 10 -o /dev/null "$UBUNTU_MIRROR/dists/$1/Release" 2>/dev/null
}

# ubuntu_keyring: $CACHE/ubuntu-archive-2018.gpg, the one archive key, from Ubuntu's keyring package
# and only when its fingerprint is the pinned one (the package comes over plain HTTP).
ubuntu_keyring() {
    local out="$CACHE/ubuntu-archive-2018.gpg" tmp fpr
    [ -s "$out" ] && return 0
    tmp="$(mktemp -d)"
    curl -fsS -m 60 -o "$tmp/k.deb" "$UBUNTU_MIRROR/$UBUNTU_KEYRING_DEB" || { rm -rf "$tmp"; die "cannot fetch $UBUNTU_KEYRING_DEB"; }
    dpkg-deb -x "$tmp/k.deb" "$tmp/x"
    export GNUPGHOME="$tmp/gnupg"; mkdir -m 0700 "$GNUPGHOME"
    gpg -q --import "$tmp/x/usr/share/keyrings/ubuntu-archive-keyring.gpg" 2>/dev/null
    fpr="$(gpg --with-colons --fingerprint "$UBUNTU_KEY_FPR" 2>/dev/null | awk -F: '/^fpr/{print $10; exit}')"
    [ "$fpr" = "$UBUNTU_KEY_FPR" ] || { rm -rf "$tmp"; die "Ubuntu's keyring package lacks the pinned archive key $UBUNTU_KEY_FPR"; }
    gpg -q --export "$UBUNTU_KEY_FPR" > "$out.tmp" && mv "$out.tmp" "$out"
    unset GNUPGHOME
    rm -rf "$tmp"
    log "Ubuntu archive key $UBUNTU_KEY_FPR -> $out"
}

# rootfs SUITE: the cached root filesystem tarball of SUITE, built once with debootstrap.
rootfs() {
    local suite="$1" tarball="$CACHE/rootfs-$1.tar" dir mirror="$MIRROR" components="main"
    local extra=() script=()
    if [ -s "$tarball" ] && [ -z "$FORCE" ]; then
        log "reusing cached root filesystem $tarball"; return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/setup.sh first"
    if [ ! -e "/usr/share/debootstrap/scripts/$suite" ]; then
        # Debian 12's debootstrap knows Ubuntu up to jammy; every Ubuntu suite since uses gutsy's script
        is_ubuntu "$suite" && [ -e /usr/share/debootstrap/scripts/gutsy ] \
            || die "this debootstrap does not know $suite (/usr/share/debootstrap/scripts): link it to sid"
        script=(/usr/share/debootstrap/scripts/gutsy)
    fi
    if is_ubuntu "$suite"; then
        ubuntu_keyring
        mirror="$UBUNTU_MIRROR"; components="main,universe"
        extra=(--keyring="$CACHE/ubuntu-archive-2018.gpg" --components="$components")
    fi
    dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    chmod 0755 "$dir"  # becomes the image's /
    log "debootstrap $suite minbase into $dir (about 2 min)"
    $SUDO debootstrap --variant=minbase "${extra[@]}" --include="$PACKAGES" "$suite" "$dir" "$mirror" "${script[@]}" >"$CACHE/debootstrap-$suite.log" 2>&1 \
        || { tail -30 "$CACHE/debootstrap-$suite.log" >&2; $SUDO rm -rf "$dir"; die "debootstrap $suite failed (log: $CACHE/debootstrap-$suite.log)"; }
    # Container-friendly trims: no getty on a console nobody reads, apt caches emptied, a machine-id
    # created at boot.
    $SUDO chroot "$dir" systemctl mask getty@tty1.service serial-getty@console.service \
        systemd-logind.service console-getty.service >/dev/null 2>&1 || true
    $SUDO chroot "$dir" apt-get clean
    $SUDO rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
    : | $SUDO tee "$dir/etc/machine-id" >/dev/null
    $SUDO rm -f "$dir/etc/apt/sources.list.d/debian.sources"
    $SUDO rm -f "$dir/etc/apt/sources.list.d/ubuntu.sources"  # noble's deb822 form of the same list
    if is_ubuntu "$suite"; then  # updates and security too, as a real Ubuntu host has them
        printf 'deb %s %s main universe\n' "$mirror" "$suite" "$mirror" "$suite-updates" "$mirror" "$suite-security" \
            | $SUDO tee "$dir/etc/apt/sources.list" >/dev/null
    else
        printf 'deb %s %s main\n' "$mirror" "$suite" | $SUDO tee "$dir/etc/apt/sources.list" >/dev/null
    fi
    $SUDO tar -C "$dir" -cf "$tarball.tmp" .
    $SUDO chown "$(id -u):$(id -g)" "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    $SUDO rm -rf "$dir"
}

find_python38() {
    local c
    for c in "${PYTHON38:-}" "$HOME"/.pyenv/versions/3.8*/bin/python3.8 /root/.pyenv/versions/3.8*/bin/python3.8 "$(command -v python3.8 || true)"; do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 8))' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

# customise FLAVOUR DIR: the variant's changes to an unpacked root filesystem.
customise() {
    local flavour="$1" dir="$2"
    case "$flavour" in
        bullseye-legacy)
            $SUDO chroot "$dir" update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
            $SUDO chroot "$dir" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null
            $SUDO chroot "$dir" iptables --version | grep -q legacy || die "iptables is not legacy in $flavour"
            ;;
        bookworm-py38)
            local py prefix
            py="$(find_python38)" || die "no CPython 3.8"
            prefix="$("$py" -c 'import sys; print(sys.base_prefix)')"
            # /usr/local, not the build prefix: the loggers' units have ProtectHome=yes, which hides a
            # prefix under /root. The interpreter's RUNPATH names the build prefix; libpython is found
            # through ld.so.cache (/usr/local/lib) instead. Site-packages and the test suite stay out.
            log "copying CPython 3.8 from $prefix into /usr/local"
            $SUDO install -m 0755 "$prefix/bin/python3.8" "$dir/usr/local/bin/python3.8"
            $SUDO ln -sfn python3.8 "$dir/usr/local/bin/python3"
            $SUDO cp -a "$prefix"/lib/libpython3.8.so* "$dir/usr/local/lib/"
            (cd "$prefix/lib" && tar -cf - --exclude=python3.8/test --exclude=python3.8/site-packages python3.8) \
                | $SUDO tar -C "$dir/usr/local/lib" -xf -
            $SUDO mkdir -p "$dir/usr/local/lib/python3.8/site-packages"
            [ -d "$prefix/include/python3.8" ] && $SUDO cp -a "$prefix/include/python3.8" "$dir/usr/local/include/"
            $SUDO chroot "$dir" ldconfig
            # The modules the roles and the analytics package need, and the ones a venv needs.
            $SUDO chroot "$dir" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin python3 -c '
import sys, venv, ensurepip, ssl, sqlite3, ctypes, zlib, lzma, bz2, hashlib, json
assert sys.version_info[:2] == (3, 8), sys.version
assert sys.prefix == "/usr/local", sys.prefix
print("python3 %s, %s, sqlite %s" % (sys.version.split()[0], ssl.OPENSSL_VERSION, sqlite3.sqlite_version))' \
                || die "the copied CPython 3.8 lacks a module it needs"
            $SUDO chroot "$dir" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin sh -c \
                'python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version && rm -rf /tmp/v' >/dev/null \
                || die "python3 -m venv (ensurepip) fails with the copied CPython 3.8"
            [ "$($SUDO chroot "$dir" /usr/bin/python3 -c 'import apt, sys; print(sys.version_info[0])')" = 3 ] \
                || die "/usr/bin/python3 lost python3-apt"
            ;;
    esac
}

build() {
    local want="$1" image flavour suite dir
    case "$want" in
        */*) image="$want"; flavour="${want#localhost/}"; flavour="${flavour%%:*}"; flavour="${flavour%-systemd}" ;;
        *) flavour="$want"; image="localhost/$want-systemd:latest" ;;
    esac
    if [ -z "$FORCE" ] && podman image exists "$image"; then
        log "image $image exists: nothing to do"; return 0
    fi
    suite="$(suite_of "$flavour" || true)"
    case "$image" in localhost/"$flavour"-systemd|localhost/"$flavour"-systemd:latest) ;; *) suite="" ;; esac
    if [ -z "$suite" ]; then
        die "image $image does not exist and is not one this script builds (localhost/<flavour>-systemd, flavours: $FLAVOURS)"
    fi
    if is_ubuntu "$flavour" && ! ubuntu_reachable "$suite"; then
        log "Ubuntu's archive ($UBUNTU_MIRROR) is not reachable: not building $image, its scenario will skip"
        return 0
    fi
    if [ "$flavour" = bookworm-py38 ] && ! find_python38 >/dev/null; then
        log "no CPython 3.8 on this machine (set PYTHON38=...): not building $image, its scenario will skip"
        return 0
    fi
    rootfs "$suite"
    log "podman import -> $image"
    if [ "$flavour" = "$suite" ]; then
        podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' \
            --change 'STOPSIGNAL SIGRTMIN+3' "$CACHE/rootfs-$suite.tar" "$image" >/dev/null
    else
        dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
        chmod 0755 "$dir"
        $SUDO tar -C "$dir" -xf "$CACHE/rootfs-$suite.tar"
        customise "$flavour" "$dir"
        $SUDO tar -C "$dir" -cf - . | podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' \
            --change 'STOPSIGNAL SIGRTMIN+3' - "$image" >/dev/null
        $SUDO rm -rf "$dir"
    fi
    podman image exists "$image" || die "import of $image failed"
    log "image $image ready ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
}

if [ $# -eq 0 ]; then
    # every scenario's images; where one cannot be built here, its stand-in scenario's (each image
    # once: the resolved list repeats most of them)
    declare -A handled=()
    for s in $E2E_SCENARIOS; do
        for want in $("$VENV/bin/python" "$ROOT/scripts/e2e_platforms.py" images "$s"); do
            [ -n "${handled[$want]:-}" ] && continue
            if [ -n "$(standin_for "$s")" ]; then  # a failed build (e.g. a mirror's hiccup) falls back
                if ( build "$want" ); then handled[$want]=1
                else log "WARNING: could not build $want: $(standin_for "$s") stands in for $s"; fi
            else
                build "$want"; handled[$want]=1
            fi
        done
    done
    # shellcheck disable=SC2046
    for s in $(resolved_scenarios); do
        for want in $("$VENV/bin/python" "$ROOT/scripts/e2e_platforms.py" images "$s"); do
            [ -n "${handled[$want]:-}" ] && continue
            build "$want"; handled[$want]=1
        done
    done
    exit 0
fi
for want in "$@"; do
    build "$want"
done
