#!/usr/bin/env bash
# Installs the Debian packages badgedock needs to build (and, with --test, to run its
# whole test suite), but only those that are missing. Run as root on Debian 12.
set -euo pipefail

build=(pkg-config libpcsclite-dev libudev-dev)
test=(pcscd vsmartcard-vpcd slapd ldap-utils openssl tmux udev systemd iproute2 debootstrap dpkg-dev fakeroot prometheus util-linux systemd-container lintian rsyslog librsvg2-bin python3-aiosmtpd postgresql chromium chromium-driver)

wanted=("${build[@]}")
if [ "${1:-}" = "--test" ]; then
  wanted+=("${test[@]}")
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "badgedock needs these Debian packages: ${missing[*]}" >&2
  echo "run this script as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
apt-get update -qq
# slapd asks debconf questions; the test suite runs its own slapd, so defaults are fine.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
