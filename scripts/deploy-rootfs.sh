#!/bin/sh
# Builds the Debian 12 (bookworm) root file system the deploy test installs the package
# into, and stores it as a tarball so later runs only unpack it.
#
#   scripts/deploy-rootfs.sh OUT.tar
#
# minbase plus what a kiosk box has anyway: pcscd (and libpcsclite1), systemd (for
# systemd-sysusers, deb-systemd-helper and the unit search path) and udev (udevadm).
# Runs debootstrap in a private mount namespace so the /proc and /sys mounts it makes in
# the target can never outlive it, even when it fails. Needs root and network access to
# the Debian mirror (MIRROR overrides the default one).
set -eu

out=${1:?usage: deploy-rootfs.sh OUT.tar}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$out.build.XXXXXX")
cleanup() {
    # Nothing is mounted below $work any more: the namespace is gone.
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT INT TERM

unshare --mount --propagation private -- \
    debootstrap --variant=minbase --include=pcscd,libpcsclite1,systemd,udev \
    bookworm "$work/root" ${MIRROR:-} >"$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2
    echo "deploy-rootfs: debootstrap failed (log above)" >&2
    exit 1
}
# An empty apt cache keeps the tarball small.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
