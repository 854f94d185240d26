#!/bin/sh
# Has udevadm parse a rules file the way udevd would, and prints what it said.
#
#   scripts/udev-rules-test.sh RULES_FILE
#
# systemd 252 (Debian 12) has no `udevadm verify` (new in 253). `udevadm test` parses
# every rules file in the system rule directories and logs each problem as
# "<file>:<line> <message>" (invalid key or operator, unknown group, bad substitution...)
# before it runs a device through the rules. This script re-executes itself in a private
# mount namespace (root needed; nothing leaks to the host, everything is gone when it
# exits) where the rule directories hold only RULES_FILE and /etc/group is a copy that
# has the group `badgedock` (udev resolves GROUP= while parsing and drops unknown
# groups). It then runs `udevadm test` on the loopback network device, which every
# network namespace has. Devices in sysfs cannot be faked: udev refuses a syspath that is
# not on a real sysfs, so the matching itself is checked by the caller's rule parser.
set -eu

if [ "${BADGEDOCK_UDEV_NS:-}" != 1 ]; then
    # Outside the namespace: make the scratch directory, run, clean up after the
    # namespace (and its mounts) is gone.
    rules=$(readlink -f "${1:?usage: udev-rules-test.sh RULES_FILE}")
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/rules" "$scratch/empty"
    cp "$rules" "$scratch/rules/"
    cp /etc/group "$scratch/group"
    grep -q '^badgedock:' "$scratch/group" || echo 'badgedock:x:999:' >>"$scratch/group"
    BADGEDOCK_UDEV_NS=1 unshare --mount --propagation private -- "$0" "$scratch"
    exit $?
fi

scratch=$1
# udevadm test writes the device's database entry under /run/udev: give it a private /run.
mount -t tmpfs tmpfs /run
mount --bind "$scratch/rules" /etc/udev/rules.d
for dir in /usr/lib/udev/rules.d /lib/udev/rules.d /usr/local/lib/udev/rules.d; do
    if [ -d "$dir" ] && ! mountpoint -q "$dir"; then mount --bind "$scratch/empty" "$dir"; fi
done
mount --bind "$scratch/group" /etc/group

udevadm test --action=add /sys/class/net/lo 2>&1
