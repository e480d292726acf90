#!/usr/bin/env bash
# Build the systemd container image the molecule scenarios boot: Debian bullseye (Python 3.9,
# systemd 247, the Debian nearest Ubuntu 20.04) from Debian's archive with debootstrap, since no
# registry is reachable. The root filesystem tarball is cached in .cache/ and the image is not
# rebuilt when podman already has it.
# Usage: scripts/build-image.sh [--force]     env: MOLECULE_IMAGE, DEBIAN_MIRROR, IMAGE_SUITE
source "$(dirname "$0")/lib.sh"

IMAGE="${MOLECULE_IMAGE:-localhost/bullseye-systemd:latest}"
SUITE="${IMAGE_SUITE:-bullseye}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the roles need on a target that would otherwise come from the internet. Kept small.
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,python3-packaging,ca-certificates,sudo,git,acl,iproute2,procps,ufw,iptables,netbase"
TARBALL="$CACHE/rootfs-$SUITE.tar"

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
    log "image $IMAGE exists: nothing to do"
    exit 0
fi

if [ ! -s "$TARBALL" ] || [ "${1:-}" = "--force" ]; then
    command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/setup.sh first"
    dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap '$SUDO rm -rf "$dir"; e2e_report_time' EXIT
    log "debootstrap $SUITE minbase into $dir (about 2-4 min)"
    $SUDO debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # Container-friendly trims: no getty on a console nobody reads, apt caches emptied, a machine-id
    # created at boot, no ufw enabled at boot unless a role asks for it.
    $SUDO chroot "$dir" systemctl mask getty@tty1.service serial-getty@console.service \
        systemd-logind.service console-getty.service >/dev/null 2>&1 || true
    $SUDO chroot "$dir" apt-get clean
    $SUDO rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
    : | $SUDO tee "$dir/etc/machine-id" >/dev/null
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" | $SUDO tee "$dir/etc/apt/sources.list" >/dev/null
    $SUDO tar -C "$dir" -cf "$TARBALL.tmp" .
    $SUDO chown "$(id -u):$(id -g)" "$TARBALL.tmp"
    mv "$TARBALL.tmp" "$TARBALL"
    $SUDO rm -rf "$dir"
    trap e2e_report_time EXIT
else
    log "reusing cached root filesystem $TARBALL"
fi

log "podman import -> $IMAGE"
podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' "$TARBALL" "$IMAGE" >/dev/null
podman image exists "$IMAGE" || die "import failed"
log "image $IMAGE ready ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
